"""Subprocesses end with their test: tests/conftest.py's ``Tool`` / ``run_tool`` start every
command in a process group of its own and kill its whole process tree (also the processes that left
the group, as torchrun's workers do) when the command times out or the test fails or is stopped by
pytest-timeout."""
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, Tool, group_members, is_alive, process_tree, run_tool

ITERS = 300  # the demo's schedule of tests/test_end_to_end.py; the run is stopped long before


def cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline') as f:
            return f.read().split('\0')
    except OSError:
        return []


def assert_all_ended(pids, pgid):
    """None of ``pids`` runs any more, and process group ``pgid`` is empty."""
    deadline = time.time() + 10  # the killed processes' parents reap them
    while time.time() < deadline and (any(map(is_alive, pids)) or group_members(pgid)):
        time.sleep(0.1)
    assert [p for p in pids if is_alive(p)] == [], 'processes left running'
    assert group_members(pgid) == []
    with pytest.raises(ProcessLookupError):
        while time.time() < deadline:  # only zombies can be left, until reaped
            os.killpg(pgid, 0)
            time.sleep(0.1)
        os.killpg(pgid, 0)


@pytest.mark.slow
def test_timed_out_training_run_leaves_no_process(tmp_path):
    """The demo (run_demo.py, whose tools/train.py is a grandchild) times out partway through
    training, as test_train_evaluate_and_draw would on a machine too slow for its limit: the
    whole process tree ends, the training grandchild included."""
    log = tmp_path / 'run.log'
    with open(log, 'w') as out:
        tool = Tool([sys.executable, 'tools/dev/run_demo.py', '--work-dir', str(tmp_path / 'work'),
                     '--data-root', str(tmp_path / 'toy'), '--iters', str(ITERS)],
                    env=dict(os.environ, OMP_NUM_THREADS='1'), stdout=out,
                    stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while 'Iter(train)' not in log.read_text():  # partway through training
            assert tool.proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, 'no training iteration within 10 min'
            time.sleep(0.5)
        pids = process_tree(tool.pid)
        assert any('tools/train.py' in cmdline(p) for p in pids[1:]), 'the training grandchild'
        with pytest.raises(subprocess.TimeoutExpired):
            tool.wait(timeout=1)
    assert_all_ended(pids, tool.pgid)
    assert not os.path.exists(tmp_path / 'work' / f'iter_{ITERS}.pth')


INNER_TESTS = '''
import os
import sys
import time

import pytest

sys.path.insert(0, {tests!r})
from conftest import Tool, _end_processes  # noqa: E402,F401  (_end_processes: autouse fixture)

# A child that starts a grandchild in a session of its own (as torchrun starts its workers).
CHILD = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
         "'import time; time.sleep(600)'], start_new_session=True); time.sleep(600)")


def start(name):
    tool = Tool([sys.executable, '-c', CHILD])
    deadline = time.time() + 120
    while len(tool.tree()) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    child = tool.tree()[1]
    assert os.getsid(child) == child != tool.pgid  # out of the tool's session and group
    with open(os.path.join({out!r}, name), 'w') as f:
        f.write(' '.join(str(p) for p in [tool.pgid] + tool.tree()))


def test_fails():
    start('fails')
    assert False, 'a failing test'


@pytest.mark.timeout(15)
def test_times_out():
    start('times_out')
    time.sleep(600)
'''


def test_failed_and_timed_out_tests_end_their_processes(tmp_path):
    """A test that fails, and one that pytest-timeout stops, while the processes they started
    (a child and a grandchild in a session of its own) still run: the conftest fixture ends
    them all."""
    (tmp_path / 'test_inner.py').write_text(INNER_TESTS.format(
        tests=os.path.join(ROOT, 'tests'), out=str(tmp_path)))
    res = run_tool([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                    str(tmp_path / 'test_inner.py')], cwd=tmp_path, timeout=300)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert '2 failed' in res.stdout and 'Timeout' in res.stdout, res.stdout[-3000:]
    for name in ('fails', 'times_out'):
        pgid, *pids = (int(p) for p in (tmp_path / name).read_text().split())
        assert len(pids) == 2 and pids[0] == pgid, pids  # the tool and its child
        assert_all_ended(pids, pgid)
