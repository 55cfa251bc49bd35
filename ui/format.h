#pragma once

// Text the workbench's views share.

#include <QString>
#include <QTableWidgetItem>

#include <optional>

namespace mppdl::ui {

/// A fraction as a percentage with two decimals ("91.25%"); `none` when there is no value.
inline QString percentText(const std::optional<double>& fraction, const QString& none = {}) {
    return fraction ? QString::number(*fraction * 100.0, 'f', 2) + "%" : none;
}

/// A read-only table cell holding a number, aligned right.
inline QTableWidgetItem* numberItem(const QString& text) {
    auto* item = new QTableWidgetItem(text);
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable);
    return item;
}

} // namespace mppdl::ui
