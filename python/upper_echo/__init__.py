"""upper-echo: the Python reference implementation of spec/PROTOCOL.md.

By role: table.py loads the pinned table, transducer.py is the pure protocol core (U, no I/O), server.py and
client.py are the socket shells around it, cli.py is the command line (argv, stdout, exit codes).
"""
