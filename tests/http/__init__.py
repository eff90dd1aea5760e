"""The HTTP engine (zeroserve/http/) in memory: its pure decisions as tables, its protocols
fed bytes over fake transports. Nothing here opens a socket or starts a process."""
