// Helpers for suites that use the lake (linked only into the binaries that call them).
#include <gtest/gtest.h>

#include "strata/lake.h"
#include "testutil/testutil.h"

namespace strata::testing {

std::string ReadLakeFile(Lake& lake, const std::string& spec) {
  auto rd = lake.OpenFile(spec);
  EXPECT_TRUE(rd.ok()) << spec << ": " << rd.status().ToString();
  if (!rd.ok()) return "";
  std::string out((*rd)->size(), '\0');
  size_t got = 0;
  EXPECT_TRUE((*rd)->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got).ok());
  out.resize(got);
  return out;
}

TestLake CreateTestLake(const std::string& dir, const std::string& dataset) {
  TestLake t;
  auto repo = Repository::Create(dir, "pw", FastInitOptions());
  EXPECT_TRUE(repo.ok()) << repo.status().ToString();
  if (!repo.ok()) return t;
  t.repo = std::move(*repo);
  auto lake = Lake::Open(t.repo.get(), LakeOptions{.actor = "tester@host"});
  EXPECT_TRUE(lake.ok()) << lake.status().ToString();
  if (!lake.ok()) return t;
  t.lake = std::move(*lake);
  Status created = t.lake->CreateDataset(dataset);
  EXPECT_TRUE(created.ok()) << created.ToString();
  return t;
}

}  // namespace strata::testing
