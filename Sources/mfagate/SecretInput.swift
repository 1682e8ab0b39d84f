// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys

/// `--secret -` and `--code -`: the value is read from standard input instead of the command line,
/// where every local user can read it (`ps`, `/proc/PID/cmdline`) while the command runs. On a
/// terminal the value is asked for with echo off; from a pipe one line is read. The inline form
/// keeps working (scripts use it) but says on stderr that it is visible.
func secretOption(_ value: String?, option: String, prompt: String) throws -> String? {
    guard let value else { return nil }
    guard value == "-" else {
        mfa_write_stderr("mfagate: warning: the value of \(option) is visible to every local user while this runs (ps); "
                         + "give \(option) - to type it or pipe it on standard input\n")
        return value
    }
    guard let line = readSecretLine(prompt), !line.isEmpty else {
        mfa_write_stderr("mfagate: \(option) -: nothing was read from standard input; nothing was changed\n")
        throw ExitCode(2)
    }
    return line
}

/// The terminal's settings while echo is off, restored by the interrupt handler.
nonisolated(unsafe) private var savedTerminal = termios()
nonisolated(unsafe) private var echoIsOff = false

/// One line from standard input without its newline (nil at end of input). On a terminal: prompts
/// on stderr and turns echo off while the line is typed (restored on Ctrl-C too).
func readSecretLine(_ prompt: String) -> String? {
    guard isatty(0) == 1, tcgetattr(0, &savedTerminal) == 0 else {
        return readLine(strippingNewline: true)?.trimmingSpaces
    }
    mfa_write_stderr(prompt)
    var quiet = savedTerminal
    quiet.c_lflag &= ~tcflag_t(ECHO)
    quiet.c_lflag |= tcflag_t(ECHONL)
    let restoreOnSignal: @convention(c) (Int32) -> Void = { sig in
        if echoIsOff { tcsetattr(0, TCSAFLUSH, &savedTerminal) }
        signal(sig, SIG_DFL)
        raise(sig)
    }
    let oldInt = signal(SIGINT, restoreOnSignal), oldTerm = signal(SIGTERM, restoreOnSignal)
    echoIsOff = tcsetattr(0, TCSAFLUSH, &quiet) == 0
    let line = readLine(strippingNewline: true)
    if echoIsOff { tcsetattr(0, TCSAFLUSH, &savedTerminal) }
    echoIsOff = false
    signal(SIGINT, oldInt); signal(SIGTERM, oldTerm)
    return line?.trimmingSpaces
}
