#include "physics/emj_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "physics/emj_test_file.h"
#include "testing/temp_repository.h"

namespace quiver::physics {
namespace {

using testing::MakeSyntheticSample;
using testing::WriteEmjFile;
using testing::WriteOptions;

class EmjFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }
  quiver::testing::TempRepository dir_{"emj"};
};

TEST_F(EmjFileTest, ReadsChunksThatReassembleTheSample) {
  const EventChunk all = MakeSyntheticSample(57, 7, true);
  testing::EmjAttributes attrs;
  attrs.sample = "emj_ctau25";
  attrs.process = "signal";
  attrs.ctau_mm = 25;
  ASSERT_TRUE(WriteEmjFile(Path("a.h5"), all, attrs));
  auto file = EmjFile::Open(Path("a.h5"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const SampleInfo& info = (*file)->info();
  EXPECT_EQ(info.sample, "emj_ctau25");
  EXPECT_EQ(info.process, "signal");
  EXPECT_DOUBLE_EQ(info.ctau_mm, 25);
  EXPECT_EQ(info.n_events, 57);
  EXPECT_EQ(info.n_jets, all.n_jets());
  EXPECT_EQ(info.n_tracks, all.n_tracks());

  std::vector<float> jet_pt, track_d0;
  std::vector<uint64_t> events;
  for (int64_t a = 0; a < 57; a += 10) {
    auto chunk = (*file)->Read(a, std::min<int64_t>(a + 10, 57));
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    ASSERT_EQ(chunk->jet_offsets.front(), 0);
    ASSERT_EQ(chunk->track_offsets.front(), 0);
    ASSERT_EQ(chunk->jet_offsets.size(), static_cast<size_t>(chunk->size() + 1));
    ASSERT_EQ(chunk->track_offsets.size(), chunk->jet_pt.size() + 1);
    ASSERT_EQ(chunk->track_d0.size(), static_cast<size_t>(chunk->n_tracks()));
    // Jet counts per event survive the rebasing.
    for (int64_t i = 0; i < chunk->size(); ++i) {
      EXPECT_EQ(chunk->jet_offsets[i + 1] - chunk->jet_offsets[i],
                all.jet_offsets[a + i + 1] - all.jet_offsets[a + i]);
    }
    events.insert(events.end(), chunk->event.begin(), chunk->event.end());
    jet_pt.insert(jet_pt.end(), chunk->jet_pt.begin(), chunk->jet_pt.end());
    track_d0.insert(track_d0.end(), chunk->track_d0.begin(), chunk->track_d0.end());
  }
  EXPECT_EQ(events, all.event);
  EXPECT_EQ(jet_pt, all.jet_pt);
  EXPECT_EQ(track_d0, all.track_d0);
}

TEST_F(EmjFileTest, EmptyRangeAndBadRange) {
  ASSERT_TRUE(WriteEmjFile(Path("a.h5"), MakeSyntheticSample(5, 1, false)));
  auto file = EmjFile::Open(Path("a.h5"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto empty = (*file)->Read(3, 3);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->size(), 0);
  EXPECT_EQ(empty->n_jets(), 0);
  auto bad = (*file)->Read(2, 9);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("a.h5"), std::string::npos);
}

TEST_F(EmjFileTest, MissingFileIsNotFound) {
  auto file = EmjFile::Open(Path("nope.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("nope.h5"), std::string::npos);
}

TEST_F(EmjFileTest, GarbageFileIsAnError) {
  std::ofstream(Path("junk.h5")) << "this is not HDF5 at all";
  auto file = EmjFile::Open(Path("junk.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("junk.h5"), std::string::npos);
}

TEST_F(EmjFileTest, TruncatedFileIsAnErrorAtOpenOrRead) {
  ASSERT_TRUE(WriteEmjFile(Path("t.h5"), MakeSyntheticSample(300, 3, true)));
  const auto size = std::filesystem::file_size(Path("t.h5"));
  std::filesystem::resize_file(Path("t.h5"), size / 2);
  auto file = EmjFile::Open(Path("t.h5"));
  if (!file.ok()) {
    EXPECT_NE(file.status().message().find("t.h5"), std::string::npos);
    return;
  }
  // The header survived: some read of the lost half must fail, with the file named.
  auto chunk = (*file)->Read(0, (*file)->n_events());
  ASSERT_FALSE(chunk.ok());
  EXPECT_NE(chunk.status().message().find("t.h5"), std::string::npos);
}

TEST_F(EmjFileTest, MissingDatasetIsNamed) {
  WriteOptions options;
  options.omit = "tracks/dz";
  ASSERT_TRUE(WriteEmjFile(Path("m.h5"), MakeSyntheticSample(5, 1, false), {}, options));
  auto file = EmjFile::Open(Path("m.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("m.h5"), std::string::npos);
  EXPECT_NE(file.status().message().find("'tracks/dz' is missing"), std::string::npos)
      << file.status().message();
}

TEST_F(EmjFileTest, WrongDtypeIsNamed) {
  WriteOptions options;
  options.as_float64 = "jets/eta";
  ASSERT_TRUE(WriteEmjFile(Path("d.h5"), MakeSyntheticSample(5, 1, false), {}, options));
  auto file = EmjFile::Open(Path("d.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("'jets/eta' is float64, expected float32"),
            std::string::npos)
      << file.status().message();
}

TEST_F(EmjFileTest, WrongFormatIsRejected) {
  testing::EmjAttributes attrs;
  attrs.format = "quiver-emj/0";
  ASSERT_TRUE(WriteEmjFile(Path("f.h5"), MakeSyntheticSample(5, 1, false), attrs));
  auto file = EmjFile::Open(Path("f.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("quiver-emj/0"), std::string::npos);
}

TEST_F(EmjFileTest, OffsetsPastTheContentAreNamed) {
  WriteOptions options;
  options.extra_jet_offset = 5;
  ASSERT_TRUE(WriteEmjFile(Path("o.h5"), MakeSyntheticSample(20, 1, false), {}, options));
  auto file = EmjFile::Open(Path("o.h5"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("jets/offsets"), std::string::npos)
      << file.status().message();
}

TEST_F(EmjFileTest, OffsetsThatJumpPastTheContentFailTheirChunkOnly) {
  const EventChunk all = MakeSyntheticSample(40, 2, false);
  WriteOptions options;
  options.jet_offset_index = 25;
  options.jet_offset_value = all.n_jets() + 1000;
  ASSERT_TRUE(WriteEmjFile(Path("j.h5"), all, {}, options));
  auto file = EmjFile::Open(Path("j.h5"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE((*file)->Read(0, 20).ok());
  auto bad = (*file)->Read(20, 30);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("j.h5: events [20, 30)"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("jets/offsets"), std::string::npos);
  EXPECT_TRUE((*file)->Read(30, 40).ok());
}

}  // namespace
}  // namespace quiver::physics
