#pragma once

// Internal: seeded randomness that is the same on every platform (the validation split, the random
// distribution of rows to segments).

#include <cstdint>
#include <vector>

namespace mppdl::data {

/// A permutation of 0..n-1 that depends only on `seed`: std::shuffle and the standard
/// distributions differ between library implementations; mt19937_64 and this loop do not.
std::vector<int64_t> seededPermutation(int64_t n, uint64_t seed);

/// The validation split of n training rows: a seeded draw of round(fraction * n) rows (at least
/// one when fraction > 0), and the rest; both ascending. ConfigError when nothing is left to train.
struct ValidationSplit {
    std::vector<int64_t> validation, train;
};
ValidationSplit splitValidation(int64_t n, double fraction, uint64_t seed);

} // namespace mppdl::data
