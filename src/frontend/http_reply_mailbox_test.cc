#include "frontend/http_reply_mailbox.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace quiver::frontend {
namespace {

bool Readable(const ReplyMailbox& mailbox) {
  pollfd p{mailbox.fd(), POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(ReplyMailboxTest, PostedWorkRunsInOrderAfterAWake) {
  ReplyMailbox mailbox;
  std::vector<int> ran;
  ASSERT_TRUE(mailbox.Post([&] { ran.push_back(1); }));
  ASSERT_TRUE(mailbox.Post([&] { ran.push_back(2); }));
  EXPECT_FALSE(Readable(mailbox));  // a deferred wake (DeliveryBatch) has not come yet
  mailbox.Wake();
  mailbox.Wake();  // one wake per drain is enough
  ASSERT_TRUE(Readable(mailbox));
  mailbox.Drain();
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_FALSE(Readable(mailbox));  // the second Wake did not signal again
}

TEST(ReplyMailboxTest, WorkPostedAfterADrainWakesAgain) {
  ReplyMailbox mailbox;
  int ran = 0;
  mailbox.Post([&] { ++ran; });
  mailbox.Wake();
  mailbox.Drain();
  mailbox.Post([&] { ++ran; });
  mailbox.Wake();
  ASSERT_TRUE(Readable(mailbox));
  mailbox.Drain();
  EXPECT_EQ(ran, 2);
  mailbox.Wake();  // nothing queued: nothing to signal
  EXPECT_FALSE(Readable(mailbox));
}

TEST(ReplyMailboxTest, AFailingWorkDoesNotStopTheOthers) {
  ReplyMailbox mailbox;
  int ran = 0;
  mailbox.Post([] { throw std::runtime_error("no memory for the reply"); });
  mailbox.Post([&] { ++ran; });
  mailbox.Wake();
  mailbox.Drain();
  EXPECT_EQ(ran, 1);
  mailbox.Post([&] { ++ran; });
  mailbox.Wake();
  ASSERT_TRUE(Readable(mailbox));
  mailbox.Drain();
  EXPECT_EQ(ran, 2);
}

TEST(ReplyMailboxTest, CloseDropsWhatIsQueuedAndRefusesMore) {
  ReplyMailbox mailbox;
  auto queued = std::make_shared<int>(0);
  auto late = std::make_shared<int>(0);
  bool ran = false;
  mailbox.Post([queued, &ran] { ran = true; });
  mailbox.Close();
  EXPECT_EQ(queued.use_count(), 1);  // destroyed by Close
  EXPECT_FALSE(mailbox.Post([late, &ran] { ran = true; }));
  EXPECT_EQ(late.use_count(), 1);
  mailbox.Wake();
  EXPECT_FALSE(Readable(mailbox));
  mailbox.Drain();
  EXPECT_FALSE(ran);
}

TEST(ReplyMailboxTest, KnowsItsIoThreads) {
  ReplyMailbox mailbox;
  ReplyMailbox other;
  EXPECT_FALSE(mailbox.OnIoThread());
  {
    const ReplyMailbox::IoThreadScope scope(mailbox);
    EXPECT_TRUE(mailbox.OnIoThread());
    EXPECT_FALSE(other.OnIoThread());
    {
      const ReplyMailbox::IoThreadScope nested(other);
      EXPECT_TRUE(other.OnIoThread());
      EXPECT_FALSE(mailbox.OnIoThread());
    }
    EXPECT_TRUE(mailbox.OnIoThread());
    bool elsewhere = true;
    std::thread([&] { elsewhere = mailbox.OnIoThread(); }).join();
    EXPECT_FALSE(elsewhere);
  }
  EXPECT_FALSE(mailbox.OnIoThread());
}

}  // namespace
}  // namespace quiver::frontend
