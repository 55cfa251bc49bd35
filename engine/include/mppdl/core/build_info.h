#pragma once

namespace mppdl {

/// The mppdl version, e.g. "0.1.0".
const char* versionString();
/// Where an installed mppdl finds resources/ (architectures, examples).
const char* resourceDirectory();
/// The source tree's resources/, used when running from a build directory.
const char* sourceResourceDirectory();

} // namespace mppdl
