#include "ui/dataset_preview.h"

#include "ui/format.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"

#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImage>
#include <QLabel>
#include <QScrollArea>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

namespace mppdl::ui {

namespace {

constexpr int kColumns = 8;    // images per row of the grid
constexpr int kThumbnail = 64; // pixels a side


} // namespace

int SourceLoader::load(const std::string& location, const data::SourceOptions& options) {
    const int request = ++m_latest;
    ++m_pending;
    inBackground<std::shared_ptr<const data::LoadedSource>>(
        this,
        [location, options] { return std::make_shared<const data::LoadedSource>(data::loadSource(location, options)); },
        [this, request](std::shared_ptr<const data::LoadedSource> source) {
            --m_pending;
            if (request == m_latest) // else a later request supersedes it
                Q_EMIT loaded(request, source);
        },
        [this, request](const QString& message) {
            --m_pending;
            if (request == m_latest)
                Q_EMIT failed(request, message);
        });
    return request;
}

SamplesView::SamplesView(QWidget* parent) : QWidget(parent) {
    m_grid = new QWidget(this);
    m_gridLayout = new QGridLayout(m_grid);
    m_gridLayout->setSpacing(6);
    auto* scroll = new QScrollArea(this);
    scroll->setWidget(m_grid);
    scroll->setWidgetResizable(true);
    m_table = new QTableWidget(this);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(scroll);
    layout->addWidget(m_table);
    clear();
}

void SamplesView::clear() {
    while (auto* item = m_gridLayout->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    m_images = 0;
    m_table->setRowCount(0);
    m_table->setColumnCount(0);
    m_table->hide();
    m_grid->parentWidget()->parentWidget()->hide(); // the scroll area
}

void SamplesView::setDataset(const data::Dataset& dataset, int count) {
    setRows(data::previewRows(dataset, count), dataset.classNames(), dataset.sampleShape());
}

void SamplesView::setRows(const std::vector<data::RowPreview>& rows, const std::vector<std::string>& classes,
                          const std::vector<int64_t>& shape, const QStringList& captions) {
    clear();
    auto className = [&](int64_t label) {
        return label >= 0 && label < int64_t(classes.size()) ? QString::fromStdString(classes[size_t(label)])
                                                             : QString::number(label);
    };
    if (data::isImageShape(shape)) {
        const int channels = int(shape[0]), height = int(shape[1]), width = int(shape[2]);
        for (const auto& r : rows) {
            const QString caption = m_images < captions.size() ? captions[m_images] : className(r.label);
            // The pixels are H x W x C bytes: grey or RGB, as QImage reads them.
            QImage image(r.pixels.data(), width, height, width * channels,
                         channels == 1 ? QImage::Format_Grayscale8 : QImage::Format_RGB888);
            auto* cell = new QWidget(m_grid);
            auto* v = new QVBoxLayout(cell);
            v->setContentsMargins(0, 0, 0, 0);
            v->setSpacing(1);
            auto* picture = new QLabel(cell);
            picture->setPixmap(QPixmap::fromImage(
                image.scaled(kThumbnail, kThumbnail, Qt::KeepAspectRatio,
                             width < kThumbnail ? Qt::FastTransformation : Qt::SmoothTransformation)));
            picture->setAlignment(Qt::AlignCenter);
            picture->setToolTip(tr("row %1: %2").arg(r.row).arg(className(r.label)));
            auto* label = new QLabel(caption, cell);
            label->setAlignment(Qt::AlignCenter);
            QFont small = label->font();
            small.setPointSizeF(small.pointSizeF() * 0.85);
            label->setFont(small);
            v->addWidget(picture);
            v->addWidget(label);
            m_gridLayout->addWidget(cell, m_images / kColumns, m_images % kColumns);
            ++m_images;
        }
        m_grid->parentWidget()->parentWidget()->show();
        return;
    }
    const int values = rows.empty() ? 0 : int(rows.front().values.size());
    m_table->setColumnCount(2 + values);
    QStringList headers{tr("row"), tr("class")};
    for (int v = 0; v < values; ++v)
        headers << tr("x%1").arg(v);
    m_table->setHorizontalHeaderLabels(headers);
    m_table->setRowCount(int(rows.size()));
    for (int i = 0; i < int(rows.size()); ++i) {
        m_table->setItem(i, 0, numberItem(QString::number(rows[size_t(i)].row)));
        m_table->setItem(i, 1,
                         new QTableWidgetItem(i < captions.size() ? captions[i] : className(rows[size_t(i)].label)));
        for (int v = 0; v < values; ++v)
            m_table->setItem(i, 2 + v, numberItem(QString::number(rows[size_t(i)].values[size_t(v)], 'g', 6)));
    }
    m_table->show();
}

SegmentsView::SegmentsView(QWidget* parent) : QWidget(parent) {
    m_segments = new QSpinBox(this);
    m_segments->setRange(1, 256);
    m_segments->setValue(4);
    m_policy = new QComboBox(this);
    for (const auto& p : data::distributionPolicies()) {
        m_policy->addItem(QString::fromUtf8(p.name));
        m_policy->setItemData(m_policy->count() - 1, QString::fromUtf8(p.description), Qt::ToolTipRole);
    }
    m_seed = new QSpinBox(this);
    m_seed->setRange(0, std::numeric_limits<int>::max());
    m_table = new QTableWidget(this);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_skew = new QLabel(this);
    m_skew->setWordWrap(true);
    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Segments:"), this));
    controls->addWidget(m_segments);
    controls->addWidget(new QLabel(tr("distribution:"), this));
    controls->addWidget(m_policy);
    controls->addWidget(new QLabel(tr("seed:"), this));
    controls->addWidget(m_seed);
    controls->addStretch(1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(controls);
    layout->addWidget(m_table, 1);
    layout->addWidget(m_skew);
    connect(m_segments, &QSpinBox::valueChanged, this, &SegmentsView::update);
    connect(m_seed, &QSpinBox::valueChanged, this, &SegmentsView::update);
    connect(m_policy, &QComboBox::currentIndexChanged, this, &SegmentsView::update);
}

void SegmentsView::setDataset(const data::Dataset& dataset) {
    m_dataset = dataset;
    update();
}

void SegmentsView::setSegments(int segments, const QString& policy) {
    const QSignalBlocker a(m_segments), b(m_policy);
    m_segments->setValue(segments);
    m_policy->setCurrentText(policy);
    update();
}

QString SegmentsView::skewText() const { return m_skew->text(); }

void SegmentsView::update() {
    m_table->setRowCount(0);
    if (m_dataset.empty()) {
        m_skew->clear();
        return;
    }
    data::DistributionSummary summary;
    try {
        summary = data::previewDistribution(m_dataset, m_segments->value(), m_policy->currentText().toStdString(),
                                            uint64_t(m_seed->value()));
    } catch (const Error& e) {
        m_table->setColumnCount(0);
        m_skew->setText(QString::fromUtf8(e.what()));
        m_skew->setStyleSheet("color: #b00020");
        return;
    }
    m_skew->setStyleSheet({});
    const auto& classes = m_dataset.classNames();
    m_table->setColumnCount(1 + int(classes.size()));
    QStringList headers{tr("rows")};
    for (const auto& c : classes)
        headers << QString::fromStdString(c);
    m_table->setHorizontalHeaderLabels(headers);
    m_table->setRowCount(int(summary.segments.size()));
    int64_t most = 1;
    for (const auto& s : summary.segments)
        for (const auto count : s.classCounts)
            most = std::max(most, count);
    for (int r = 0; r < int(summary.segments.size()); ++r) {
        const auto& s = summary.segments[size_t(r)];
        m_table->setVerticalHeaderItem(r, new QTableWidgetItem(tr("segment %1").arg(r)));
        m_table->setItem(r, 0, numberItem(QString::number(s.rows)));
        for (int c = 0; c < int(s.classCounts.size()); ++c) {
            auto* item = numberItem(QString::number(s.classCounts[size_t(c)]));
            // Shaded by count: a non-IID policy shows as a diagonal.
            QColor shade(31, 119, 180);
            shade.setAlphaF(float(double(s.classCounts[size_t(c)]) / double(most)) * 0.6f);
            item->setBackground(shade);
            m_table->setItem(r, 1 + c, item);
        }
    }
    m_skew->setText(tr("skew %1 (rows of the fullest segment over the mean; 1 is even)").arg(summary.skew, 0, 'f', 3));
}

} // namespace mppdl::ui
