#include "strata/status.h"

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "strata/object_id.h"

namespace strata {
namespace {

TEST(StatusTest, OkIsEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_FALSE(s.retryable());
}

TEST(StatusTest, FactoriesCarryCodeAndMessage) {
  Status s = Status::Corruption("pack 3f2a: bad magic");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_FALSE(s.IsNotFound());
  EXPECT_EQ(s.message(), "pack 3f2a: bad magic");
  EXPECT_EQ(s.ToString(), "corruption: pack 3f2a: bad magic");
  EXPECT_TRUE(Status::NotFound("x").IsNotFound());
  EXPECT_TRUE(Status::IOError("x", true).retryable());
  EXPECT_FALSE(Status::IOError("x").retryable());
}

TEST(StatusTest, WithContextKeepsCodeAndRetryable) {
  Status s = Status::IOError("disk gone", true).WithContext("reading pack 7");
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_TRUE(s.retryable());
  EXPECT_EQ(s.message(), "reading pack 7: disk gone");
  EXPECT_TRUE(Status().WithContext("anything").ok());
}

TEST(StatusTest, FromErrnoMapsCodesAndNamesThePath) {
  EXPECT_EQ(Status::FromErrno(ENOENT, "/a/b").code(), StatusCode::kNotFound);
  EXPECT_EQ(Status::FromErrno(EEXIST, "/a/b").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Status::FromErrno(EACCES, "/a/b").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Status::FromErrno(ENOSPC, "/a/b").code(), StatusCode::kNoSpace);
  EXPECT_EQ(Status::FromErrno(EIO, "/a/b").code(), StatusCode::kIOError);
  EXPECT_FALSE(Status::FromErrno(EIO, "/a/b").retryable());
  EXPECT_TRUE(Status::FromErrno(EINTR, "/a/b").retryable());
  EXPECT_NE(Status::FromErrno(ENOENT, "/a/b").message().find("/a/b"), std::string::npos);
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  STRATA_ASSIGN_OR_RETURN(int h, Half(x));
  STRATA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  STRATA_RETURN_IF_ERROR(Half(x).status());
  return Status::OK();
}

TEST(ResultTest, ValueAndError) {
  Result<int> ok = Half(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 4);
  EXPECT_TRUE(ok.status().ok());
  Result<int> bad = Half(3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(ResultTest, MacrosPropagate) {
  EXPECT_EQ(*Quarter(12), 3);
  EXPECT_EQ(Quarter(6).status().message(), "odd");  // 6 -> 3 fails at the second step
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_FALSE(CheckEven(1).ok());
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ObjectIdTest, HexRoundTrip) {
  ObjectId id;
  for (size_t i = 0; i < ObjectId::kSize; ++i) id.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  auto back = ObjectId::FromHex(id.ToHex());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
  EXPECT_EQ(id.Short().size(), 12u);
  EXPECT_FALSE(id.IsZero());
  EXPECT_TRUE(ObjectId().IsZero());
  EXPECT_FALSE(ObjectId::FromHex("abc").ok());
  EXPECT_FALSE(ObjectId::FromHex(std::string(64, 'g')).ok());
}

}  // namespace
}  // namespace strata
