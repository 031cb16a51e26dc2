#include "gateway/local/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <string>

#include "testing/temp_repository.h"

namespace quiver::gateway {
namespace {

using namespace std::chrono_literals;

class ChildProcessTest : public ::testing::Test {
 protected:
  std::unique_ptr<ChildProcess> Sh(const std::string& script, bool capture = false) {
    auto child = ChildProcess::Spawn({{"/bin/sh", "-c", script}, dir_.path() / "log", capture});
    EXPECT_TRUE(child.ok()) << child.status().ToString();
    return child.ok() ? std::move(child).value() : nullptr;
  }
  // Reads stdout until `n` bytes or EOF (blocking: the child writes, then exits or waits).
  static std::string Read(ChildProcess& c, size_t n) {
    std::string out;
    char buf[256];
    while (out.size() < n) {
      const ssize_t got = ::read(c.stdout_fd(), buf, std::min(sizeof buf, n - out.size()));
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
    }
    return out;
  }
  testing::TempRepository dir_{"child"};
};

TEST_F(ChildProcessTest, ReportsExitCodeAndReaps) {
  auto child = Sh("exit 3");
  ASSERT_TRUE(child->WaitExit(10s));
  EXPECT_EQ(child->ExitDescription(), "exit code 3");
  EXPECT_EQ(::kill(child->pid(), 0), -1);  // reaped: no zombie under that pid
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ChildProcessTest, CapturesStdoutAndLogsStderr) {
  auto child = Sh("echo out; echo err1 >&2; echo err2 >&2", true);
  EXPECT_EQ(Read(*child, 100), "out\n");  // EOF once the child exits
  ASSERT_TRUE(child->WaitExit(10s));
  EXPECT_EQ(child->LogTail(), "err1\nerr2");
  EXPECT_EQ(child->LogTail(1), "err2");
}

TEST_F(ChildProcessTest, StopTerminatesWithSigterm) {
  // The spawner thread blocks every signal: this also checks the child unblocks them.
  auto child = Sh("echo up; exec sleep 1000", true);
  ASSERT_EQ(Read(*child, 3), "up\n");
  EXPECT_FALSE(child->Exited());
  child->Stop(10s);
  EXPECT_EQ(child->ExitDescription(), "killed by signal 15 (SIGTERM)");
  EXPECT_EQ(::kill(child->pid(), 0), -1);
}

TEST_F(ChildProcessTest, StopKillsAChildThatIgnoresSigterm) {
  auto child = Sh("trap '' TERM; echo up; while :; do :; done", true);
  ASSERT_EQ(Read(*child, 3), "up\n");  // the trap is set
  child->Stop(200ms);
  EXPECT_EQ(child->ExitDescription(), "killed by signal 9 (SIGKILL)");
}

TEST_F(ChildProcessTest, RunsInItsOwnProcessGroup) {
  auto child = Sh("exec sleep 1000");
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_NE(::getpgid(child->pid()), ::getpgrp());
}

TEST_F(ChildProcessTest, NoticesAnExternalKill) {
  auto child = Sh("exec sleep 1000");
  EXPECT_FALSE(child->WaitExit(0ms));
  ::kill(child->pid(), SIGKILL);
  ASSERT_TRUE(child->WaitExit(10s));
  EXPECT_EQ(child->ExitDescription(), "killed by signal 9 (SIGKILL)");
}

TEST_F(ChildProcessTest, ExecFailureExits127WithTheReasonLogged) {
  auto child = ChildProcess::Spawn({{"/nonexistent/program"}, dir_.path() / "log", false});
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE((*child)->WaitExit(10s));
  EXPECT_EQ((*child)->ExitDescription(), "exit code 127");
  EXPECT_NE((*child)->LogTail().find("exec failed: /nonexistent/program"), std::string::npos);
}

TEST_F(ChildProcessTest, UnwritableLogFileIsAnError) {
  auto child = ChildProcess::Spawn({{"/bin/true"}, dir_.path() / "no" / "such" / "log", false});
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.status().code(), StatusCode::kUnavailable);
}

TEST_F(ChildProcessTest, DoesNotLeakFileDescriptors) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // without CLOEXEC on purpose
  auto child = Sh("ls /proc/self/fd", true);
  const std::string listed = Read(*child, 1000);
  ::close(fds[0]);
  ::close(fds[1]);
  // 0, 1, 2 and the one ls opens to read the directory (3): nothing of ours.
  std::istringstream lines(listed);
  int count = 0;
  for (int fd; lines >> fd; ++count) EXPECT_LE(fd, 3) << listed;
  EXPECT_GE(count, 3) << listed;
}

TEST(FileTailTest, LastLines) {
  testing::TempRepository dir("tail");
  dir.Write("f", "a\nb\nc\n");
  EXPECT_EQ(FileTail(dir.path() / "f", 2), "b\nc");
  EXPECT_EQ(FileTail(dir.path() / "f", 10), "a\nb\nc");
  EXPECT_EQ(FileTail(dir.path() / "missing", 2), "");
}

}  // namespace
}  // namespace quiver::gateway
