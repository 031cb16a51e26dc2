#pragma once
// Process-wide set-up shared by the long-running commands (serve, gateway, up): shutdown
// signals through a self-pipe, and the allocator settings for large tensors.

namespace quiver::cli {

// Creates the pipe and installs the handler for SIGTERM and SIGINT; ignores SIGPIPE (a
// client that disconnects mid-reply must not kill the server). Call once, from main.
bool InstallShutdownSignals();
// Blocks until SIGTERM or SIGINT arrives (or has arrived since the last call); returns it.
int WaitForShutdownSignal();
// Makes the next WaitForShutdownSignal return `signo` as if it had arrived (a command that
// decides to stop by itself, e.g. a child it cannot do without has died).
void RequestShutdown(int signo);
// The read end of the shutdown pipe: readable (poll) while a signal is pending, so that a
// wait can be cut short by one without consuming it (`quiver up` starting its servers).
int ShutdownSignalFd();

// Tensors of several MiB arrive and leave with every request. glibc serves allocations
// above its mmap threshold with fresh mappings that the kernel zeroes page by page on each
// request (~45 % of server time for 16 MiB tensors over gRPC, measured with perf); keeping
// them in the heap and not trimming it lets the allocator reuse the memory.
void KeepLargeBuffersInHeap();

}  // namespace quiver::cli
