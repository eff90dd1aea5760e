"""zeroserve's test suite: real sockets on 127.0.0.1, real processes, small fakes."""
