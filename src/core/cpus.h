#pragma once
// How many CPUs this process may run on.

namespace quiver {

// The CPUs in this process's affinity mask (taskset, cgroup cpusets), at least 1; the
// hardware's count where the mask cannot be read. Thread pools sized by it do not put
// several busy threads on one core when the process is pinned: on a server pinned to one
// core, two HTTP I/O threads cost switches and could take requests from two connections
// out of their arrival order (docs/benchmarks.md, "HTTP I/O threads").
int UsableCpus();

}  // namespace quiver
