#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace mppdl {

/// What kind of failure ended an operation; the CLI maps each kind to its own exit code.
enum class ErrorKind { Config, Data, Device, Storage, Cancelled, Internal };

/// Short lower-case name of a kind ("config", "data", ...), as printed by the CLI.
const char* toString(ErrorKind kind);

/// The process exit code documented for a kind (see `mppdl --help`).
int exitCode(ErrorKind kind);

/// A failure that ends the operation. Expected problems in user input that can be listed
/// (an invalid architecture) are returned as `Problem` values instead.
class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), m_kind(kind) {}
    ErrorKind kind() const { return m_kind; }

private:
    ErrorKind m_kind;
};

/// Bad options or an invalid architecture: the user must change what they asked for.
class ConfigError : public Error {
public:
    explicit ConfigError(const std::string& m) : Error(ErrorKind::Config, m) {}
};

/// Unreadable or malformed data; the message names the file, line and column where known.
class DataError : public Error {
public:
    explicit DataError(const std::string& m) : Error(ErrorKind::Data, m) {}
};

/// A device that does not exist or failed (CUDA out of memory, no such GPU).
class DeviceError : public Error {
public:
    explicit DeviceError(const std::string& m) : Error(ErrorKind::Device, m) {}
};

/// The project file or an output file could not be read or written.
class StorageError : public Error {
public:
    explicit StorageError(const std::string& m) : Error(ErrorKind::Storage, m) {}
};

/// The user stopped the operation (Ctrl-C, the Stop button).
class CancelledError : public Error {
public:
    explicit CancelledError(const std::string& m = "cancelled") : Error(ErrorKind::Cancelled, m) {}
};

/// A bug in mppdl: an invariant did not hold.
class InternalError : public Error {
public:
    explicit InternalError(const std::string& m) : Error(ErrorKind::Internal, m) {}
};

/// One problem found in user input: where (a node name, "file:line:column") and what.
struct Problem {
    std::string where;
    std::string message;
};

/// "where: message" lines, one per problem.
std::string formatProblems(const std::vector<Problem>& problems);

} // namespace mppdl
