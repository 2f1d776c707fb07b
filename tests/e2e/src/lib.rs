//! End-to-end tests of queue failover live in `tests/`: the gateway in-process, `example-echo`
//! instances as real processes (so they can be SIGKILLed), and a private `redis-server`.
