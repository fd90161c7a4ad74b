"""The CUDA-graph capture's control flow, on a stand-in stream (the real one needs a GPU;
``lars-ref gpu-check`` runs it there)."""
import types

from lars_ref.tools.cuda_graph import capture_step


class FakeStream:
    """Records the capture calls; ``end_error`` plays an invalidated capture."""

    def __init__(self, end_error=None):
        self.capturing, self.calls, self.end_error = False, [], end_error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        if self.capturing:
            raise RuntimeError("synchronize during capture")

    def begin_capture(self):
        self.capturing = True
        self.calls.append("begin")

    def end_capture(self):
        self.capturing = False
        self.calls.append("end")
        if self.end_error:
            raise self.end_error


def _fake_xp(stream):
    cuda = types.SimpleNamespace(Stream=lambda non_blocking: stream,
                                 get_current_stream=lambda: FakeStream())
    return types.SimpleNamespace(cuda=cuda)


def test_a_clean_step_captures():
    stream, runs = FakeStream(), []
    assert capture_step(lambda: runs.append(stream.capturing), _fake_xp(stream)) == "ok"
    assert runs == [False, True] and stream.calls == ["begin", "end"]


def test_a_synchronising_step_fails_and_the_capture_is_ended():
    stream = FakeStream()
    outcome = capture_step(stream.synchronize, _fake_xp(stream))
    assert outcome == "failed: RuntimeError: synchronize during capture"
    assert stream.calls == ["begin", "end"] and not stream.capturing


def test_an_invalidated_capture_fails_at_its_end():
    stream = FakeStream(end_error=RuntimeError("capture invalidated"))
    assert capture_step(lambda: None, _fake_xp(stream)) == \
        "failed: RuntimeError: capture invalidated"
