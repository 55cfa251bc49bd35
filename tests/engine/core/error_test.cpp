#include "mppdl/core/error.h"

#include <gtest/gtest.h>

#include <set>

using namespace mppdl;

TEST(Error, EveryKindHasItsOwnExitCode) {
    std::set<int> codes;
    for (auto kind : {ErrorKind::Config, ErrorKind::Data, ErrorKind::Device, ErrorKind::Storage, ErrorKind::Cancelled,
                      ErrorKind::Internal}) {
        EXPECT_NE(exitCode(kind), 0) << toString(kind);
        codes.insert(exitCode(kind));
    }
    EXPECT_EQ(codes.size(), 6u);
}

TEST(Error, TypedExceptionsCarryTheirKind) {
    try {
        throw DataError("x.csv:3: ragged row");
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Data);
        EXPECT_STREQ(e.what(), "x.csv:3: ragged row");
    }
}

TEST(Error, FormatProblemsNamesWhere) {
    EXPECT_EQ(formatProblems({{"conv1", "kernel 5x5 larger than input 3x3"}, {"", "no Input layer"}}),
              "conv1: kernel 5x5 larger than input 3x3\nno Input layer");
}
