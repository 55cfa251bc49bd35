#include "mppdl/core/error.h"

namespace mppdl {

const char* toString(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::Config: return "config";
    case ErrorKind::Data: return "data";
    case ErrorKind::Device: return "device";
    case ErrorKind::Storage: return "storage";
    case ErrorKind::Cancelled: return "cancelled";
    case ErrorKind::Internal: return "internal";
    }
    return "internal";
}

int exitCode(ErrorKind kind) {
    // 1 is left to generic failures of the shell; 2 is what CLI11 and most tools use for usage.
    switch (kind) {
    case ErrorKind::Config: return 2;
    case ErrorKind::Data: return 3;
    case ErrorKind::Device: return 4;
    case ErrorKind::Storage: return 5;
    case ErrorKind::Internal: return 70;   // EX_SOFTWARE
    case ErrorKind::Cancelled: return 130; // 128 + SIGINT, what a shell shows for Ctrl-C
    }
    return 70;
}

std::string formatProblems(const std::vector<Problem>& problems) {
    std::string out;
    for (const auto& p : problems) {
        if (!out.empty())
            out += '\n';
        out += p.where.empty() ? p.message : p.where + ": " + p.message;
    }
    return out;
}

} // namespace mppdl
