"""Runner, sweep and report reliability: parameter values by Python literal rules, one run per folder,
sweep resume keyed on the full parameter set and notebook version, unique point folders, sweep.json
written as points finish, failed cells named, malformed files skipped and listed (issue 20)."""
import json
import math
from pathlib import Path

import nbformat
import pytest

from workbench import cli, runs, sweeps
from workbench.runs import RunError, coerce_value, run_many, run_notebook, scan_runs

PARAMS = '''x = 1  # an int
name = "a"  # a string
fail = False  # raise in the body
do_record = True  # call record
out_dir = ""  # run folder'''
BODY = '''if fail:
    raise ValueError(f"boom {x}")'''
REC = '''from workbench.results import record
if do_record:
    record({"summary": {"x": x, "name_len": len(name)}}, {"x": x, "name": name}, out_dir, notebook_id="tiny")'''


def write_nb(path: Path, params: str = PARAMS, body: str = BODY, rec: str = REC, title: str = "# Tiny") -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(title), cell, nbformat.v4.new_code_cell(body),
                nbformat.v4.new_code_cell(rec)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def nbs(tmp_path, monkeypatch):
    """Two tiny notebooks (tiny: x, name, fail, do_record; other: y) as the notebook folder."""
    d = tmp_path / "nbs"
    d.mkdir()
    write_nb(d / "tiny.ipynb")
    write_nb(d / "other.ipynb", params='y = 2  # only here\nout_dir = ""  # run folder', body="pass",
             rec='from workbench.results import record\nrecord({"summary": {"y": y}}, {"y": y}, out_dir)')
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(d))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return d


def fake_run_folder(d: Path, x: int = 1, status: str = "ok") -> Path:
    """A run folder as the runner writes it (run.json, results.json with a run section)."""
    d.mkdir(parents=True)
    info = {"id": "tiny", "status": status, "error": None, "params": {"x": x}, "wall_time_s": 1.5}
    (d / "run.json").write_text(json.dumps(info))
    (d / "results.json").write_text(json.dumps({"params": {"x": x}, "metrics": {"summary": {"x": x}},
                                                "run": info}))
    return d


# ------------------------------------------------------------------------------ parameter values
ERR = "error"
CASES = [
    ("int", "17", 17), ("int", "-3", -3), ("int", "1_000", 1000), ("int", "0o17", 15),
    ("int", "017", ERR), ("int", "1:30", ERR), ("int", "1.5", ERR), ("int", "true", ERR), ("int", "1e3", ERR),
    ("int", "", ERR), ("int", ".nan", ERR),
    ("float", "1e-3", 0.001), ("float", "3", 3.0), ("float", ".5", 0.5), ("float", "-2.5e2", -250.0),
    ("float", ".nan", ERR), ("float", ".inf", ERR), ("float", "-.inf", ERR), ("float", "nan", ERR),
    ("float", "inf", ERR), ("float", "1e999", ERR), ("float", "1:30", ERR), ("float", "true", ERR),
    ("bool", "true", True), ("bool", "False", False), ("bool", "TRUE", True),
    ("bool", "on", ERR), ("bool", "yes", ERR), ("bool", "1", ERR),
    ("str", "017", "017"), ("str", "1:30", "1:30"), ("str", "null", "null"), ("str", "nan", "nan"),
    ("list", "[1, 2]", [1, 2]), ("list", "(0.1, 0.2)", [0.1, 0.2]), ("list", '["a", "b"]', ["a", "b"]),
    ("list", "[(1, 2)]", [[1, 2]]),
    ("list", "7", ERR), ("list", "[1, 017]", ERR), ("list", "[.nan]", ERR), ("list", "[1e999]", ERR),
    ("list", "[1, 1:30]", ERR), ("list", "{1, 2}", ERR), ("dict", "{'a': 1}", {"a": 1}), ("dict", "[]", ERR),
]


@pytest.mark.parametrize("typ,text,want", CASES)
def test_parameter_values_follow_python_literals(typ, text, want):
    if want == ERR:
        with pytest.raises(RunError) as e:
            coerce_value("seed", text, typ, "1")
        msg = str(e.value)  # names the parameter, the value and the expected type
        assert "'seed'" in msg and repr(text) in msg and f"expects {typ}" in msg
    else:
        got = coerce_value("seed", text, typ, "1")
        assert got == want and type(got) is type(want)  # tuples are passed as lists (papermill quotes tuples)


def test_parameter_errors_say_what_to_write():
    with pytest.raises(RunError, match=r"write 17 \(decimal\) or 0o17"):
        coerce_value("seed", "017", "int")
    with pytest.raises(RunError, match="NaN and infinity"):
        coerce_value("lr", "nan", "float")
    with pytest.raises(RunError, match="true or false"):
        coerce_value("progress", "yes", "bool")
    # values given from Python are type-checked by the same rules
    assert coerce_value("t", 3, "float") == 3.0 and isinstance(coerce_value("t", 3, "float"), float)
    with pytest.raises(RunError, match="that is a bool"):
        coerce_value("n", True, "int")
    with pytest.raises(RunError, match="NaN"):
        coerce_value("t", math.inf, "float")
    # an untyped parameter (default None) takes a literal if it is one, else the text
    assert coerce_value("u", "[1]", "None") == [1] and coerce_value("u", "abc", "None") == "abc"


# ------------------------------------------------------------------------------ run all
def test_run_all_rejects_a_name_no_notebook_has(nbs, tmp_path, capsys):
    rc = cli.main(["run", "all", "-p", "bakend", "vllm:x", "--out", str(tmp_path / "all"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "bakend" in err and "no notebook" in err
    assert not (tmp_path / "all").exists()  # nothing ran
    # a bad value for one notebook also stops everything before the first run
    with pytest.raises(RunError, match="notebook 'other'.*expects int"):
        run_many(["tiny", "other"], {"y": "five"}, base=tmp_path / "all2")
    assert not list((tmp_path / "all2").rglob("run.json"))


def test_run_all_applies_a_name_to_the_notebooks_that_have_it(nbs, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runs, "run_notebook", lambda nb_id, p, out, **kw: calls.append((nb_id, p, out)))
    run_many(["other", "tiny"], {"y": "5", "x": "3"}, base=tmp_path / "b")
    assert [(c[0], c[1]) for c in calls] == [("other", {"y": "5"}), ("tiny", {"x": "3"})]
    assert all(Path(c[2]).parent.parent == tmp_path / "b" for c in calls)  # <base>/<id>/<timestamp>


# ------------------------------------------------------------------------------ one run per folder
def test_a_non_empty_out_is_refused_and_left_untouched(nbs, tmp_path, capsys):
    old = fake_run_folder(tmp_path / "out", x=1)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with pytest.raises(RunError, match="not empty.*--force"):
        run_notebook("tiny", {"x": "2"}, old)
    assert cli.main(["run", "tiny", "-p", "x", "2", "--out", str(old), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    # --force empties only a run folder
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(RunError, match="not a run folder"):
        run_notebook("tiny", {}, other, force=True)
    assert (other / "thesis.tex").read_text() == "keep me"
    assert cli.main(["run", "all", "--force", "-q"]) == 2
    assert "--force is for one run" in capsys.readouterr().err


def test_forced_failing_rerun_leaves_no_old_metrics_and_names_the_cell(nbs, tmp_path, capsys):
    old = fake_run_folder(tmp_path / "out", x=1)
    (old / "figure.html").write_text("old figure")
    rc = cli.main(["run", "tiny", "-p", "x", "2", "-p", "fail", "true", "--out", str(old), "--force", "-q"])
    cap = capsys.readouterr()
    assert rc == 1
    # the console names the cell (index in the source notebook, first line) and the error
    assert "cell 2 'if fail:' raised ValueError: boom 2" in cap.err
    assert cap.out.strip() == ""  # no metrics printed: this run recorded none
    assert sorted(p.name for p in old.iterdir()) == ["run.json", "run.log", "tiny.html", "tiny.ipynb"]
    info = json.loads((old / "run.json").read_text())
    assert info["status"] == "failed" and info["params"]["x"] == 2 and len(info["notebook_sha256"]) == 64
    assert info["error"].startswith("cell 2 'if fail:' raised ValueError: boom 2")
    rows, skipped = scan_runs(old)
    assert [(r["status"], r["metrics"]) for r in rows] == [("failed", {})] and skipped == []


def test_failure_of_a_non_cell_error_keeps_its_type_and_first_line():
    msg = runs.describe_failure(TimeoutError("\n  A cell timed out after 5 s.\nmore detail"))
    assert msg.splitlines()[0] == "TimeoutError: A cell timed out after 5 s."


# ------------------------------------------------------------------------------ malformed results.json
BAD_RESULTS = {"invalid JSON": b"{not json", "array": b"[]", "null": b"null", "number": b"1",
               "binary": bytes(range(256)), "metrics array": b'{"metrics": [1]}', "directory": None}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_runner_records_a_malformed_results_json(nbs, tmp_path, monkeypatch, kind):
    """The notebook (here papermill stubbed) writes a malformed results.json: run.json is still
    written, the run is not ok, the error says why, the file is left as it was."""
    import papermill

    def fake_execute(src, dst, parameters, **kw):
        out = Path(parameters["out_dir"])
        Path(dst).write_text(Path(src).read_text())
        if BAD_RESULTS[kind] is None:
            (out / "results.json").mkdir()
        else:
            (out / "results.json").write_bytes(BAD_RESULTS[kind])

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    r = run_notebook("tiny", {}, tmp_path / "run", html=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert r.status == info["status"] == "bad-results" and r.metrics is None
    assert "results.json" in info["error"]
    if BAD_RESULTS[kind] is not None:
        assert (tmp_path / "run" / "results.json").read_bytes() == BAD_RESULTS[kind]


BAD_RUN_JSON = {"invalid JSON": b"{not json", "array": b"[]", "missing keys": b"{}",
                "wall time a string": b'{"id": "tiny", "status": "ok", "wall_time_s": "abc"}',
                "params an array": b'{"id": "tiny", "status": "ok", "params": []}',
                "binary": bytes(range(256)), "unreadable": "deny", "directory": None}


@pytest.mark.parametrize("fname,kind", [("results.json", k) for k in BAD_RESULTS] + [("results.json", "unreadable")]
                         + [("run.json", k) for k in BAD_RUN_JSON])
def test_report_skips_and_lists_bad_files(tmp_path, monkeypatch, capsys, fname, kind):
    fake_run_folder(tmp_path / "good", x=7)
    bad_dir = fake_run_folder(tmp_path / "deep" / "er" / "bad", x=8)
    target = bad_dir / fname
    target.unlink()
    content = BAD_RUN_JSON[kind] if fname == "run.json" else {**BAD_RESULTS, "unreadable": "deny"}[kind]
    if content is None:
        target.mkdir()
    elif content == "deny":  # the tests run as root, for whom chmod 000 changes nothing
        target.write_text("{}")
        real = Path.read_bytes
        monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied")) if self == target else real(self))
    else:
        target.write_bytes(content)
    rows, skipped = scan_runs(tmp_path)
    assert [s["path"] for s in skipped] == [str(target)]
    by_dir = {Path(r["dir"]).name: r for r in rows}
    assert by_dir["good"]["metrics"] == {"x": 7}
    if fname == "run.json":
        assert "bad" not in by_dir  # a run without usable run info is not shown
    else:
        assert by_dir["bad"]["metrics"] == {}  # never the metrics of a file that cannot be read
    assert cli.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("skipped 1 unusable file(s)") > out.index("tiny")  # listed after the table
    assert str(target) in out
    assert cli.main(["report", "--json", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert len(json.loads(cap.out)) == len(rows) and str(target) in cap.err


# ------------------------------------------------------------------------------ sweeps
def test_point_folders_are_unique():
    pts = [{"backend": "vllm:org/model"}, {"backend": "vllm:org-model"},
           {"name": "a" * 200 + "1"}, {"name": "a" * 200 + "2"}]
    names = [sweeps.point_dir_name(p, p) for p in pts]
    assert len(set(names)) == 4 and all(len(n) <= 193 for n in names)
    assert names[0].startswith("backend=vllm-org-model-")  # still readable
    # the full parameter set decides, not only the grid values
    assert sweeps.point_dir_name({"n": 1}, {"n": 1, "seed": 0}) != sweeps.point_dir_name({"n": 1}, {"n": 1, "seed": 1})


def test_sweep_json_is_written_as_points_finish(nbs, tmp_path, monkeypatch):
    calls = []

    def point(nb_id, params, out, timeout, mlflow="off"):
        calls.append(out)
        if len(calls) == 2:  # the sweep is killed during its second point
            raise KeyboardInterrupt
        return {"dir": out, "status": "ok", "error": None, "wall_time_s": 0.1}

    monkeypatch.setattr(sweeps, "_run_point", point)
    with pytest.raises(KeyboardInterrupt):
        sweeps.sweep("tiny", {"x": ["1", "2", "3"]}, executor="sequential", out=tmp_path / "sw")
    rec = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [p["status"] for p in rec["points"]] == ["ok", "pending", "pending"] and rec["finished"] is False
    assert not list((tmp_path / "sw").glob(".sweep.json.tmp-*"))
    with pytest.raises(RunError, match="same point more than once"):
        sweeps.sweep("tiny", {"x": ["1", "1"]}, executor="sequential", out=tmp_path / "sw2")
    with pytest.raises(RunError, match="out_dir is set by the sweep"):
        sweeps.sweep("tiny", {"x": ["1"]}, {"out_dir": "/tmp/x"}, executor="sequential", out=tmp_path / "sw3")


def test_sweep_resumes_only_identical_points(nbs, tmp_path, capsys):
    out = tmp_path / "sw"
    first = sweeps.sweep("tiny", {"x": ["1", "2"]}, {"name": "a"}, executor="sequential", out=out)
    assert [p["status"] for p in first["points"]] == ["ok", "ok"]
    again = sweeps.sweep("tiny", {"x": ["1", "2"]}, {"name": "a"}, executor="sequential", out=out)
    assert all(p["status"].startswith("ok (skipped") for p in again["points"])
    # other fixed parameters into the same --out: new points run, never the old results reported
    changed = sweeps.sweep("tiny", {"x": ["1", "2"]}, {"name": "bbb"}, executor="sequential", out=out)
    assert [p["status"] for p in changed["points"]] == ["ok", "ok"]
    for p in changed["points"]:
        data = json.loads((Path(p["dir"]) / "results.json").read_text())
        assert data["params"]["name"] == "bbb" and data["metrics"]["summary"]["x"] == int(p["point"]["x"])
    assert {p["dir"] for p in changed["points"]}.isdisjoint(p["dir"] for p in first["points"])
    rec = json.loads((out / "sweep.json").read_text())
    assert rec["fixed"] == {"name": "bbb"} and rec["finished"] is True
    assert [p["dir"] for p in rec["points"]] == [p["dir"] for p in changed["points"]]
    table = sweeps.sweep_report(out)  # only the latest sweep's points, the others counted
    lines = table.read_text().splitlines()
    assert len(lines) == 3 and "2 run folder(s)" in capsys.readouterr().out
    # a point is resumed only with the same notebook version and the same recorded parameters
    d = Path(changed["points"][0]["dir"])
    params = runs.validate_parameters("tiny", {"name": "bbb", "x": "1"})
    sha = runs.notebook_sha256("tiny")
    assert sweeps.resumable(d, params, sha)[0]
    assert sweeps.resumable(d, {**params, "x": 5}, sha) == (False, "recorded parameters differ")
    write_nb(nbs / "tiny.ipynb", title="# Tiny, edited")
    assert not sweeps.resumable(d, params, runs.notebook_sha256("tiny"))[0]
    (d / "results.json").write_text("[]")
    assert sweeps.resumable(d, params, sha) == (False, "results.json missing or unreadable")


def test_ray_executor_updates_sweep_json_per_point(nbs, tmp_path, monkeypatch):
    """The Ray path reports each finished point through the same callback (a stand-in ray module that
    runs tasks in-process; the real Ray run is tests/test_sweeps.py)."""
    import sys
    import types

    seen = []

    class Ref:
        def __init__(self, value):
            self.value = value

    fake = types.SimpleNamespace(
        init=lambda **kw: None, shutdown=lambda: None, cluster_resources=lambda: {"CPU": 2},
        remote=lambda **opts: (lambda f: types.SimpleNamespace(remote=lambda *a: Ref(f(*a)))),
        wait=lambda pending, num_returns=1: (pending[:1], pending[1:]),
        get=lambda ref: ref.value)
    monkeypatch.setitem(sys.modules, "ray", fake)

    def point(nb_id, params, out, timeout, mlflow="off"):
        seen.append(json.loads((tmp_path / "sw" / "sweep.json").read_text()))
        return {"dir": out, "status": "ok", "error": None, "wall_time_s": 0.1}

    monkeypatch.setattr(sweeps, "_run_point", point)
    rec = sweeps.sweep("tiny", {"x": ["1", "2"]}, executor="ray", out=tmp_path / "sw")
    assert [p["status"] for p in rec["points"]] == ["ok", "ok"] and rec["finished"] is True
    # sweep.json was on disk, all points pending, before the first point ran
    assert [p["status"] for p in seen[0]["points"]] == ["pending", "pending"]
