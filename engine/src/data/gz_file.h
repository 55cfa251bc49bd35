#pragma once

// Internal: whole-file reads with transparent gunzip, shared by the file sources.

#include <string>

namespace mppdl::data {

/// The whole contents of a file, gunzipped when it starts with the gzip magic (concatenated gzip
/// members are read one after another, as gzip does). Throws DataError "PATH: ..." when the file is
/// missing or unreadable, or its gzip data is truncated or corrupt.
std::string readFile(const std::string& path);

/// Whether `bytes` start with the gzip magic (1f 8b).
bool isGzip(const std::string& bytes);

} // namespace mppdl::data
