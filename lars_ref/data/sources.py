"""Where each dataset lives on disk and online, and how its files are recognised.

A :class:`FileSpec` describes one official file: its name, the size of its
content and the hashes that identify it. Hashes are checked on the *content*
(the bytes after gunzip) wherever they are known, so a ``.gz`` written afresh
around identical bytes still passes; the md5 of the published archive is the
fallback when no content hash is known (Fashion-MNIST, the CIFAR-10 tar.gz).

Folder layout under the data directory (``data_dir`` or ``$LARS_REF_DATA``)::

    mnist/          {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fashion-mnist/  the same four names
    cifar10/        cifar-10-python.tar.gz  or  cifar-10-batches-py/
    cifar10-jpg/    CIFAR-10-images.tar  or  CIFAR-10-images/{train,test}/<class>/

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from typing import NamedTuple

from lars_ref.data.errors import DataError


class FileSpec(NamedTuple):
    """One official file and the facts that identify it (None: not known)."""

    name: str                          # file name as published
    content_bytes: int | None = None   # size after gunzip (or the size, if not .gz)
    content_sha256: str | None = None  # sha256 of the content
    content_md5: str | None = None     # md5 of the content
    archive_md5: str | None = None     # md5 of the published file's own bytes


class RemoteDataset(NamedTuple):
    """Where a downloadable dataset comes from and which folder it goes to."""

    folder: str                     # sub-folder of the data directory
    mirrors: tuple[str, ...]        # base URLs, tried in order, ending in "/"
    files: tuple[FileSpec, ...]


# MNIST: content size, md5 and sha256 of the uncompressed IDX files (the md5s are
# the widely published ones), and the md5 of the official .gz downloads.
MNIST_FILES = (
    FileSpec("train-images-idx3-ubyte.gz", 47_040_016,
             "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
             "6bbc9ace898e44ae57da46a324031adb", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    FileSpec("train-labels-idx1-ubyte.gz", 60_008,
             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
             "a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
    FileSpec("t10k-images-idx3-ubyte.gz", 7_840_016,
             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
             "2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
    FileSpec("t10k-labels-idx1-ubyte.gz", 10_008,
             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
             "27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c"),
)

# Fashion-MNIST: only the md5s of the official .gz files are published
# (github.com/zalandoresearch/fashion-mnist), so a re-compressed copy fails.
FASHION_MNIST_FILES = (
    FileSpec("train-images-idx3-ubyte.gz", 47_040_016,
             archive_md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    FileSpec("train-labels-idx1-ubyte.gz", 60_008,
             archive_md5="25c81989df183df01b3e8a0aad5dffbe"),
    FileSpec("t10k-images-idx3-ubyte.gz", 7_840_016,
             archive_md5="bef4ecab320f06d8554ea6380940ec79"),
    FileSpec("t10k-labels-idx1-ubyte.gz", 10_008,
             archive_md5="bb300cfdad3c16e7a12a480ee83cd310"),
)

# CIFAR-10 python version (www.cs.toronto.edu/~kriz/cifar.html): the md5 of the
# tar.gz, and the md5 of each pickled batch inside it (as torchvision lists them).
CIFAR10_ARCHIVE = FileSpec("cifar-10-python.tar.gz",
                           archive_md5="c58f30108f718f92721af3b95e74349a")
CIFAR10_BATCHES = (
    FileSpec("data_batch_1", content_md5="c99cafc152244af753f735de768cd75f"),
    FileSpec("data_batch_2", content_md5="d4bba439e000b95fd0a9bffe97cbabec"),
    FileSpec("data_batch_3", content_md5="54ebc095f3ab1f0389bbae665268c751"),
    FileSpec("data_batch_4", content_md5="634d18415352ddfa80567beed471001a"),
    FileSpec("data_batch_5", content_md5="482c414d41f54cd18b22e5b47cb7c3cb"),
    FileSpec("test_batch", content_md5="40351d587109b95175f43aff81a1287e"),
)
CIFAR10_META = FileSpec("batches.meta", content_md5="5ff9c542aee3614f3951f8cda6e48888")

REMOTE = {
    "mnist": RemoteDataset("mnist", (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ), MNIST_FILES),
    "fashion_mnist": RemoteDataset("fashion-mnist", (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ), FASHION_MNIST_FILES),
    "cifar10": RemoteDataset("cifar10", (
        "https://www.cs.toronto.edu/~kriz/",
    ), (CIFAR10_ARCHIVE,)),
}


def gunzip(raw: bytes, where) -> bytes:
    """Decompress gzip bytes, or raise DataError naming ``where`` if corrupt."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{where}: corrupt or truncated gzip file ({err}); delete it "
                        "and download it again") from None


def verify(raw: bytes, spec: FileSpec, where, *, dataset: str) -> bytes:
    """Check ``raw`` (a file's bytes) against ``spec``; return its content.

    The content is ``raw`` gunzipped when it is gzip data and ``spec`` says
    something about the content (size or hash); otherwise ``raw`` itself. The
    file passes when the content size is right and, if any hash is known, the
    published archive's md5 or a content hash matches.

    Raises
    ------
    DataError
        Wrong size, undecodable gzip, or no known hash matches.
    """
    content_facts = (spec.content_bytes, spec.content_sha256, spec.content_md5)
    knows_content = any(fact is not None for fact in content_facts)
    is_gzip = raw[:2] == b"\x1f\x8b"
    content = gunzip(raw, where) if (is_gzip and knows_content) else raw
    fix = (f"delete it and run `lars-ref download {dataset}`, or pass verify=False "
           "to load a file you changed on purpose")
    if spec.content_bytes is not None and len(content) != spec.content_bytes:
        raise DataError(f"{where}: {len(content):,} bytes of content, expected "
                        f"{spec.content_bytes:,} (truncated or not the official "
                        f"file); {fix}")
    if _hash_matches(raw, content, spec) is False:
        raise DataError(f"{where}: hash does not match the official {spec.name} of "
                        f"{dataset} (corrupt or modified); {fix}")
    return content


def _hash_matches(raw: bytes, content: bytes, spec: FileSpec) -> bool | None:
    """True/False if some hash is known and matches/does not; None if none known."""
    checks = [(spec.archive_md5, "md5", raw),
              (spec.content_sha256, "sha256", content),
              (spec.content_md5, "md5", content)]
    known = [(expected, algo, data) for expected, algo, data in checks if expected]
    if not known:
        return None
    # md5 is an integrity check here, not a security one (the published hashes are md5)
    return any(hashlib.new(algo, data, usedforsecurity=False).hexdigest() == expected
               for expected, algo, data in known)
