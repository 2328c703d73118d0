import sys

if sys.argv[1:2] in (["client"], ["transform"]):
    # C-9: from the first line of ours that runs, SIGINT kills the command instead of raising a KeyboardInterrupt.
    # _signal, not signal, whose enums would cost a start milliseconds.
    import _signal

    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:  # one ignored at start stays ignored
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)

from .cli import main  # noqa: E402 (after the reset: importing takes the most time)

sys.exit(main())
