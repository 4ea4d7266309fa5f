#!/usr/bin/python3
"""Be the person at the keyboard for polkit's text agent.

Runs COMMAND with a polkit authentication agent registered for it
(pkttyagent --process, on a pseudo-terminal of its own, as a desktop
session's agent would be) and answers the agent's password prompts with
PASSWORD, as a person typing would. Used by desktop-checks.sh to show that
an administrator's change through unlinkd-monitor is authorized after
polkit asks for the password.

The agent must be registered before COMMAND makes its first call: COMMAND's
process is created stopped, the agent is registered for its pid (which the
exec keeps), and only then does COMMAND run.

Usage: tty-agent.py [--timeout S] [--tries N] PASSWORD COMMAND...
  --tries N  answer at most N prompts (default 1); at a further prompt
             the agent is ended, as a person closing the dialog would
Output, one line each: "AGENT REGISTERED pid=P", "AGENT PROMPT n",
"AGENT COMPLETE" or "AGENT FAILED" (pkttyagent's verdict), the agent's
transcript prefixed with "tty| ", and last "COMMAND EXIT n". Runs until
COMMAND exits (desktop-checks.sh ends it) or the timeout; exits with
COMMAND's status, 124 on timeout, 2 if the agent did not register.
"""
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time


def main():
    args = sys.argv[1:]
    timeout, tries = 120.0, 1
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--timeout":
            timeout = float(args.pop(0))
        elif opt == "--tries":
            tries = int(args.pop(0))
        else:
            sys.exit("tty-agent: unknown option " + opt)
    if len(args) < 2:
        sys.exit(__doc__)
    password, command = args[0], args[1:]
    deadline = time.monotonic() + timeout

    # COMMAND's process, stopped before its exec.
    child = os.fork()
    if child == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status = os.waitpid(child, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        sys.exit("tty-agent: the command's process did not stop")

    # The agent on a terminal of its own (its controlling terminal: the text
    # listener reads the password from /dev/tty with echo off).
    master, slave = os.openpty()
    notify_r, notify_w = os.pipe()

    def controlling_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    agent = subprocess.Popen(
        ["pkttyagent", "--process", str(child), "--notify-fd", str(notify_w)],
        stdin=slave, stdout=slave, stderr=slave, pass_fds=(notify_w,),
        start_new_session=True, preexec_fn=controlling_tty)
    os.close(slave)
    os.close(notify_w)
    # pkttyagent closes the notify fd once polkitd has the registration.
    ready, _, _ = select.select([notify_r], [], [], max(0.0, deadline - time.monotonic()))
    if not ready or os.read(notify_r, 64) != b"" or agent.poll() is not None:
        print("AGENT NOT REGISTERED", flush=True)
        os.kill(child, signal.SIGKILL)   # ends a stopped process too
        agent.kill()
        sys.exit(2)
    print(f"AGENT REGISTERED pid={child}", flush=True)
    os.kill(child, signal.SIGCONT)

    pending, prompts, code = "", 0, None
    while code is None:
        left = deadline - time.monotonic()
        if left <= 0:
            print("TIMEOUT", flush=True)
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            code = 124
            break
        ready, _, _ = select.select([master], [], [], min(0.2, left))
        if ready:
            try:
                data = os.read(master, 4096).decode(errors="replace")
            except OSError:   # EIO: the agent closed its terminal
                data = ""
            pending += data
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                line = line.rstrip("\r")
                print("tty| " + line, flush=True)
                if "AUTHENTICATION COMPLETE" in line:
                    print("AGENT COMPLETE", flush=True)
                elif "AUTHENTICATION FAILED" in line:
                    print("AGENT FAILED", flush=True)
            # The prompt has no newline after it: answer it where it stands.
            if pending.rstrip().endswith("Password:"):
                print("tty| " + pending.rstrip(), flush=True)
                pending = ""
                prompts += 1
                print(f"AGENT PROMPT {prompts}", flush=True)
                if prompts <= tries:
                    # pkttyagent prints the prompt, then turns echo off
                    # with TCSAFLUSH, which discards input typed before:
                    # a password written in between is lost and the prompt
                    # waits forever (a CI run's wrong-password session
                    # timed out that way, its password echoed). Type only
                    # once echo is off, as a person reading the prompt would.
                    while termios.tcgetattr(master)[3] & termios.ECHO:
                        if time.monotonic() >= deadline:
                            break
                        time.sleep(0.05)
                    os.write(master, (password + "\n").encode())
                else:
                    # A person who gives up closes the dialog: polkitd
                    # then refuses the request instead of waiting.
                    print("AGENT ENDED (prompt left unanswered)", flush=True)
                    agent.terminate()
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
    # The agent stays until COMMAND is gone: polkitd sends the answer to
    # unlinkd after the agent reports, and an agent that vanishes first
    # turns a success into a cancellation.
    agent.terminate()
    try:
        agent.wait(5)
    except subprocess.TimeoutExpired:
        agent.kill()
    print(f"COMMAND EXIT {code}", flush=True)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
