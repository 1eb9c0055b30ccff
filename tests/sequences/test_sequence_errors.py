import pickle

from bake_seq.sequences.errors import OutputError, PlateError


def test_one_line_with_and_without_path():
    error = PlateError("a/b.dpx", "cannot read\npixels", "re-render it")
    assert str(error) == "a/b.dpx: cannot read pixels — re-render it"
    assert (error.path, error.problem, error.fix) == ("a/b.dpx", "cannot read pixels", "re-render it")
    assert str(PlateError(None, "bad range", "write 1-10")) == "bad range — write 1-10"


def test_output_error_is_not_an_os_error_and_survives_pickling():
    error = OutputError("out.exr", "disk full", "free space")
    assert not isinstance(error, OSError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OutputError and str(copy) == str(error)
