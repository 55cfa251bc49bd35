#include "terminal_observer.h"

#include "cli_common.h"

#include "mppdl/core/text_table.h"

#include <cmath>
#include <iostream>
#include <string>
#include <unistd.h>

namespace mppdl::cli {


TerminalObserver::TerminalObserver(bool verbose) : m_verbose(verbose), m_tty(isatty(STDERR_FILENO) != 0) {}

void TerminalObserver::clearProgress() {
    if (m_progressShown) {
        std::fputs("\r\x1b[K", stderr);
        std::fflush(stderr);
        m_progressShown = false;
    }
}

void TerminalObserver::progress(const RunEvent& e) {
    if (!m_tty)
        return;
    const int width = 24;
    const double fraction = e.stepsPerEpoch > 0 ? double(e.stepInEpoch) / double(e.stepsPerEpoch) : 0.0;
    const int filled = int(fraction * width);
    std::string bar(size_t(filled), '=');
    if (filled < width)
        bar += '>' + std::string(size_t(width - filled - 1), ' ');
    char line[256];
    std::snprintf(line, sizeof line, "\r\x1b[Kepoch %*d/%d [%s] %3.0f%%  %s %s  loss %.4f  acc %.1f%%  ETA %s",
                  e.epochs >= 10 ? 2 : 1, e.epoch, e.epochs, bar.c_str(), 100.0 * fraction,
                  groupThousands(std::llround(e.metric("images_per_sec"))).c_str(), m_rate, e.metric("train_loss"),
                  100.0 * e.metric("train_accuracy"), humanDuration(e.metric("eta_seconds")).c_str());
    std::fputs(line, stderr);
    std::fflush(stderr);
    m_progressShown = true;
}

void TerminalObserver::onEvents(const std::vector<RunEvent>& batch) {
    for (const auto& e : batch) {
        switch (e.kind) {
        case EventKind::Progress: progress(e); break;
        case EventKind::Started:
            if (e.hasMetric("image_samples"))
                m_rate = e.metric("image_samples") > 0 ? "img/s" : "rows/s";
            [[fallthrough]];
        case EventKind::Message:
            clearProgress();
            if (m_verbose)
                std::cout << e.message << std::endl;
            break;
        case EventKind::Epoch: {
            clearProgress();
            char line[256];
            if (e.segment >= 0) { // a segment's view of the epoch: shown under the merged line
                int n = std::snprintf(line, sizeof line, "  segment %d: train loss %.4f acc %5.2f%%  %s rows  %s %s",
                                      e.segment, e.metric("train_loss"), 100.0 * e.metric("train_accuracy"),
                                      groupThousands(std::llround(e.metric("rows"))).c_str(),
                                      groupThousands(std::llround(e.metric("images_per_sec"))).c_str(), m_rate);
                if (e.hasMetric("divergence")) // strategies that join replicas
                    n += std::snprintf(line + n, sizeof line - size_t(n), "  divergence %.4g", e.metric("divergence"));
                if (e.hasMetric("val_accuracy")) // an ensemble's member alone
                    std::snprintf(line + n, sizeof line - size_t(n), "  val acc %5.2f%%",
                                  100.0 * e.metric("val_accuracy"));
                m_segmentLines.push_back(line);
                break;
            }
            int n = std::snprintf(line, sizeof line, "epoch %*d/%d  train loss %.4f acc %5.2f%%",
                                  e.epochs >= 10 ? 2 : 1, e.epoch, e.epochs, e.metric("train_loss"),
                                  100.0 * e.metric("train_accuracy"));
            if (e.hasMetric("val_loss"))
                n += std::snprintf(line + n, sizeof line - size_t(n), "  val loss %.4f acc %5.2f%%",
                                   e.metric("val_loss"), 100.0 * e.metric("val_accuracy"));
            std::snprintf(line + n, sizeof line - size_t(n), "  lr %.4g  %s  %s %s", e.metric("lr"),
                          humanDuration(e.metric("epoch_seconds")).c_str(),
                          groupThousands(std::llround(e.metric("images_per_sec"))).c_str(), m_rate);
            std::cout << line << std::endl;
            if (m_verbose)
                for (const auto& segmentLine : m_segmentLines)
                    std::cout << segmentLine << '\n';
            m_segmentLines.clear();
            break;
        }
        case EventKind::Evaluation:
            clearProgress();
            if (e.segment >= 0) { // an ensemble's member alone, before the ensemble
                char line[160];
                std::snprintf(line, sizeof line, "%ssegment %d alone: test accuracy %.2f%%  loss %.4f",
                              e.segment == 0 ? "\n" : "", e.segment, 100.0 * e.metric("test_accuracy"),
                              e.metric("test_loss"));
                std::cout << line << std::endl;
                break;
            }
            if (e.evaluation && m_verbose) {
                std::cout << '\n';
                printEvaluation(*e.evaluation);
            }
            break;
        case EventKind::Finished: {
            clearProgress();
            std::cout << "\nfinished " << e.epoch << " epoch" << (e.epoch == 1 ? "" : "s") << " in "
                      << humanDuration(e.metric("seconds"));
            if (e.hasMetric("test_accuracy")) {
                char acc[64];
                std::snprintf(acc, sizeof acc, ": test accuracy %.2f%%", 100.0 * e.metric("test_accuracy"));
                std::cout << acc;
            } else if (e.hasMetric("val_accuracy")) {
                char acc[80];
                std::snprintf(acc, sizeof acc, ": validation accuracy %.2f%% (the source has no test split)",
                              100.0 * e.metric("val_accuracy"));
                std::cout << acc;
            }
            std::cout << std::endl;
            break;
        }
        case EventKind::Failed:
        case EventKind::Cancelled:
            // main() prints the error once; only the bar needs clearing here.
            clearProgress();
            break;
        }
    }
}

} // namespace mppdl::cli
