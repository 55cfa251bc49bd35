#pragma once

// Text the workbench's views share.

#include <QString>

#include <optional>

namespace mppdl::ui {

/// A fraction as a percentage with two decimals ("91.25%"); `none` when there is no value.
inline QString percentText(const std::optional<double>& fraction, const QString& none = {}) {
    return fraction ? QString::number(*fraction * 100.0, 'f', 2) + "%" : none;
}

} // namespace mppdl::ui
