// A disk that fills up during an ingest: the caller gets a clear kNoSpace, the branch is left
// where it was, the repository still verifies, and the same ingest run again once there is
// space stores everything.
#include <gtest/gtest.h>

#include <string>

#include "base/fault_env.h"
#include "strata/ingest.h"
#include "strata/lake.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

using strata::testing::FastInitOptions;
using strata::testing::RandomBytes;
using strata::testing::ReadLakeFile;
using strata::testing::TempDir;
using strata::testing::WriteFile;

TEST(IngestDiskFull, NoSpaceLeavesTheBranchAndTheRepositoryIntact) {
  TempDir dir;
  const std::string src = dir / "src";
  for (int i = 0; i < 120; ++i) WriteFile(src + "/f" + std::to_string(i) + ".bin", RandomBytes(i, 64 << 10));
  FaultEnv env(Env::Default());
  OpenOptions o;
  o.env = &env;
  auto repo = Repository::Create(dir / "repo", "pw", FastInitOptions(), o);
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  auto lake = Lake::Open(repo->get());
  ASSERT_TRUE(lake.ok()) << lake.status().ToString();
  ASSERT_TRUE((*lake)->CreateDataset("d").ok());
  WriteFile(dir / "first/a.txt", "before the disk filled");
  ASSERT_TRUE(Ingest(lake->get(), dir / "first", "d@main", {}).ok());
  auto before = (*lake)->Resolve("d@main");
  ASSERT_TRUE(before.ok());

  env.SetSpaceLimit(2 << 20);  // 7.5 MiB of new data does not fit
  env.SetTornWrites(true);
  auto full = Ingest(lake->get(), src, "d@main", {});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kNoSpace) << full.status().ToString();
  EXPECT_GT(env.faults_injected(), 0u);
  auto after = (*lake)->Resolve("d@main");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->commit.id, before->commit.id);  // no commit of a part of the source
  EXPECT_EQ(ReadLakeFile(**lake, "d@main:a.txt"), "before the disk filled");

  env.SetSpaceLimit(-1);
  strata::testing::ExpectVerifies(repo->get(), /*allow_warnings=*/true);  // leftovers at worst
  auto again = Ingest(lake->get(), src, "d@main", {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->files, 120u);
  EXPECT_FALSE(again->commit.unchanged);
  for (int i : {0, 57, 119}) {
    EXPECT_EQ(ReadLakeFile(**lake, "d@main:f" + std::to_string(i) + ".bin"), RandomBytes(i, 64 << 10)) << i;
  }
  EXPECT_EQ(ReadLakeFile(**lake, "d@main:a.txt"), "before the disk filled");
  strata::testing::ExpectVerifies(repo->get(), /*allow_warnings=*/true);
}

}  // namespace
}  // namespace strata
