// Package cluster runs a manager cluster of real `nerve manager` processes
// for the end-to-end tests and benchmarks of the manager: on 127.0.0.1 with
// free ports, or each replica in a network namespace of its own, joined by a
// bridge, so that faults can cut the network under it. It also brings the
// faults: SIGKILL and restart with the same state, SIGSTOP and SIGCONT, and
// partitions.
//
// Every process it starts dies with the process that started it
// (PR_SET_PDEATHSIG) and at Close; every namespace, bridge and route it
// creates is removed at Close, which is safe to call after a failure.
package cluster
