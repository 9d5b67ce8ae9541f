"""linphonec (linphone-cli), driven through linphonecsh: a second, independent SIP phone stack
(liblinphone) for the flows baresip 1.0 lacks, such as taking an attended transfer (it copies
a Refer-To's Replaces into its INVITE; baresip puts it in the Request-URI)."""

import contextlib
import os
import subprocess
import time

from conftest import PEERS


class Linphone:
    def __init__(self, home, env):
        self.home = home
        self.env = env

    def sh(self, *args):
        return subprocess.run(["linphonecsh", *args], env=self.env, capture_output=True, text=True,
                              timeout=30)

    def generic(self, command):
        r = self.sh("generic", command)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def wait_output(self, command, predicate, timeout=15, what="linphonec state"):
        """Polls a command's output until `predicate` holds (linphonecsh has no event stream)."""
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.generic(command)
            if predicate(out):
                return out
            time.sleep(0.2)
        raise AssertionError(f"{what}: not reached in {timeout}s; last output:\n{out}")


@contextlib.contextmanager
def linphonec(tmp_path, play_wav, port=5111, sip_settings=()):
    """A linphonec on 127.0.0.1:`port` (sip:lin@127.0.0.1:port) that answers every call at
    once and plays `play_wav`; its whole state lives in tmp_path/linphone-home. `sip_settings`
    are more `key=value` lines for its config's [sip] section."""
    home = tmp_path / "linphone-home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
    rc = home / "linphonerc"  # linphonec rewrites its config file: give it a copy
    config = (PEERS / "linphone" / "linphonerc").read_text().replace("sip_port=5111", f"sip_port={port}")
    rc.write_text(config.replace("[sip]\n", "[sip]\n" + "".join(f"{line}\n" for line in sip_settings), 1))
    lin = Linphone(home, dict(os.environ, HOME=str(home)))
    r = lin.sh("init", "-c", str(rc), "-d", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        # init returns before the daemon opens its control pipe: wait until it answers.
        for _ in range(100):
            r = lin.sh("generic", "autoanswer enable")
            if "Failed to connect pipe" not in r.stderr:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stdout + r.stderr
        lin.generic("soundcard use files")
        lin.generic(f"play {play_wav}")
        yield lin
    finally:
        lin.sh("generic", "terminate all")
        lin.sh("exit")
        # linphonecsh's exit is a request: a daemon still in a call may stay, holding its SIP
        # port for the next test. Its command line names this test's own config file.
        gone = False
        for _ in range(50):
            if subprocess.run(["pgrep", "-f", str(rc)], capture_output=True).returncode != 0:
                gone = True
                break
            time.sleep(0.1)
        if not gone:
            subprocess.run(["pkill", "-KILL", "-f", str(rc)], capture_output=True)
