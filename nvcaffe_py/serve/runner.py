"""The runner: starts queued tasks (dataset builds, training jobs) as processes of their own and
follows them to the end, so that a crash in a job never takes the server down. Jobs run one at a
time per device, in the order they were queued; builds start at once. It holds only the handles
of the processes it started: a restarted server finds every task's story in its state.json, and
marks what was running when the last one stopped as aborted (a job can then be resumed)."""
import logging
import os
import signal
import subprocess
import threading
import time

from ..errors import CaffeError
from .errors import Conflict
from .tasks import ABORTED, DONE, FAILED, QUEUED, RUNNING, failure_message, read_state, write_state

logger = logging.getLogger(__name__)
POLL_S = 0.5
STOP_GRACE_S = 30  # a job stopped by SIGINT writes its snapshot first


class Runner:
    def __init__(self, jobs_dir, launchers):
        """launchers: {kind: function(folder, state) -> tasks.Launch} for each kind of task."""
        self.jobs_dir = jobs_dir
        self.launchers = launchers
        self._processes = {}  # folder -> (Popen, device, open log file)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread = None

    # -- the loop --------------------------------------------------------------------------------
    def start(self):
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="nvcaffe-runner", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stopping.wait(POLL_S):
            try:
                self.tick()
            except Exception:  # noqa: BLE001  (the loop must outlive one bad task folder)
                logger.exception("runner")

    def tick(self):
        """Record the processes that ended; start the queued tasks whose device is free."""
        with self._lock:
            self._reap()
            self._start_queued()

    def shutdown(self):
        """Stop the loop, then every running task (SIGINT: a job snapshots and stops), each marked
        aborted."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for folder, (process, _, _) in self._processes.items():
                self._request_abort(folder, process, "the server stopped")
            deadline = time.monotonic() + STOP_GRACE_S
            for process, _, _ in self._processes.values():
                try:
                    process.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._reap()

    # -- tasks -----------------------------------------------------------------------------------
    def abort(self, folder, what):
        with self._lock:
            state = read_state(folder)
            if state["status"] == QUEUED:
                state.update(status=ABORTED, message="aborted before it started")
                write_state(folder, state)
            elif folder in self._processes:
                self._request_abort(folder, self._processes[folder][0], "aborted")
            else:
                raise Conflict(f"the {what} is {state['status']}; only a queued or running one can be aborted")

    def recover(self):
        """Mark the tasks that a previous server left running as aborted, ending any process of
        theirs still alive."""
        for kind in self.launchers:
            for item_id in self.jobs_dir.ids(kind):
                folder = self.jobs_dir.folder(kind, item_id)
                state = read_state(folder)
                if state["status"] != RUNNING:
                    continue
                _end_leftover(state.pop("pid", None), folder)
                if state["runs"]:
                    state["runs"][-1].setdefault("finished", time.time())
                state.update(status=ABORTED, message="the server stopped while it ran")
                write_state(folder, state)

    def _request_abort(self, folder, process, message):
        state = read_state(folder)
        state.update(abort_requested=True, message=message)
        write_state(folder, state)
        process.send_signal(signal.SIGINT)

    def _reap(self):
        for folder, (process, _, log) in list(self._processes.items()):
            returncode = process.poll()
            if returncode is None:
                continue
            log.close()
            del self._processes[folder]
            state = read_state(folder)
            run = state["runs"][-1]
            run.update(finished=time.time(), returncode=returncode)
            state.pop("pid", None)
            if state.pop("abort_requested", False):
                state["status"] = ABORTED
            elif returncode == 0:
                state.update(status=DONE, message="")
            else:
                state.update(status=FAILED, message=failure_message(os.path.join(folder, run["log"]), returncode))
            write_state(folder, state)

    def _start_queued(self):
        busy = {device for _, device, _ in self._processes.values()}
        queued = []
        for kind, launcher in self.launchers.items():
            for item_id in self.jobs_dir.ids(kind):
                folder = self.jobs_dir.folder(kind, item_id)
                state = read_state(folder)
                if state["status"] == QUEUED and folder not in self._processes:
                    queued.append((state.get("queued", 0), folder, state, launcher))
        for _, folder, state, launcher in sorted(queued, key=lambda item: item[0]):
            try:
                launch = launcher(folder, state)
            except CaffeError as exc:
                state.update(status=FAILED, message=str(exc))
                write_state(folder, state)
                continue
            if launch.device is not None and launch.device in busy:
                continue
            busy.add(launch.device)
            self._launch(folder, state, launch)

    def _launch(self, folder, state, launch):
        log = open(os.path.join(folder, launch.log_name), "ab")
        try:
            process = subprocess.Popen(launch.argv, cwd=launch.cwd, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            log.close()
            state.update(status=FAILED, message=f"cannot start {launch.argv[0]}: {exc.strerror or exc}")
            write_state(folder, state)
            return
        self._processes[folder] = (process, launch.device, log)
        state["runs"].append({"log": launch.log_name, "started": time.time(), **launch.details})
        state.update(status=RUNNING, pid=process.pid)
        write_state(folder, state)


def _end_leftover(pid, folder):
    """Stop process `pid` if it still runs the task in `folder` (its command line names it)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            running_it = os.path.basename(folder).encode() in f.read()
    except (OSError, TypeError):
        return
    if not running_it:
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.2)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)
