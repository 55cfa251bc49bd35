#include "ui/dataset_view.h"

#include "ui/dataset_preview.h"

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"
#include "mppdl/session/recorded_run.h"
#ifdef MPPDL_WITH_POSTGRES
#include "mppdl/data/catalog.h"
#endif

#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QPushButton>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <set>
#include <string>

namespace mppdl::ui {

namespace {

QJsonObject parse(const std::string& json) { return QJsonDocument::fromJson(QByteArray::fromStdString(json)).object(); }

QString shapeText(const QJsonArray& shape) {
    QStringList parts;
    for (const auto& d : shape)
        parts << QString::number(d.toInteger());
    return parts.join("x");
}

} // namespace

DatasetView::DatasetView(const store::Project& project, int64_t datasetId, QWidget* parent)
    : QWidget(parent), m_datasetId(datasetId) {
    m_summary = new QLabel(this);
    m_summary->setTextFormat(Qt::RichText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setWordWrap(true);
    m_histogram = new QCustomPlot(this);
    m_histogram->setMinimumSize(420, 260);
    m_statistics = new QTableWidget(this);
    m_statistics->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_statistics->verticalHeader()->setVisible(false);
    m_statistics->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    auto* lower = new QHBoxLayout;
    lower->addWidget(m_histogram, 3);
    lower->addWidget(m_statistics, 1);
    // The rows themselves, read again from the source (in the background): samples, and how N
    // segments would hold them.
    m_samples = new SamplesView(this);
    m_segments = new SegmentsView(this);
    m_rowsStatus = new QLabel(this);
    m_rowsStatus->setObjectName("rowsStatus");
    m_rowsStatus->setWordWrap(true);
    auto* rows = new QTabWidget(this);
    rows->addTab(m_samples, tr("Samples"));
    rows->addTab(m_segments, tr("Segments"));
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_summary);
    layout->addLayout(lower, 1);
    m_rowsRow = new QHBoxLayout;
    m_rowsRow->addWidget(m_rowsStatus, 1);
    layout->addLayout(m_rowsRow);
    layout->addWidget(rows, 1);

    const auto dataset = project.dataset(datasetId);
    if (!dataset) {
        m_summary->setText(tr("<b>Dataset %1 is not in this project.</b>").arg(datasetId));
        return;
    }
    const auto schema = parse(dataset->schema);
    const auto stats = parse(dataset->statistics);
    const auto options = parse(dataset->options);
    QStringList optionText; // the options that were set, not the defaults
    for (auto it = options.begin(); it != options.end(); ++it) {
        const auto v = it.value();
        const bool unset = v.isNull() || (v.isString() && v.toString().isEmpty()) ||
                           (v.isArray() && v.toArray().isEmpty()) || (v.isDouble() && v.toDouble() == 0.0) ||
                           (it.key() == "kind" && v.toString() == "auto") ||
                           (it.key() == "bytea" && v.toString() == "uint8") ||
                           (it.key() == "delimiter" && v.toString() == ",");
        if (!unset)
            optionText << it.key() + " " +
                              (v.isArray()
                                   ? QString::fromUtf8(QJsonDocument(v.toArray()).toJson(QJsonDocument::Compact))
                                   : v.toVariant().toString());
    }
    const qint64 testRows = schema.value("test_rows").toInteger();
    m_summary->setText(
        tr("<b>%1</b> &mdash; %2<br>%3<br>samples %4 %5; %6 training rows%7; %8 classes%9")
            .arg(QString::fromStdString(dataset->name).toHtmlEscaped(), QString::fromStdString(dataset->kind),
                 QString::fromStdString(dataset->location).toHtmlEscaped(),
                 shapeText(schema.value("sample_shape").toArray()), schema.value("dtype").toString(),
                 QLocale().toString(schema.value("train_rows").toInteger()),
                 testRows > 0 ? tr(", %1 test rows").arg(QLocale().toString(testRows)) : tr(" (no test split)"))
            .arg(dataset->classNames.size())
            .arg(optionText.isEmpty() ? QString() : "<br>" + tr("options: ") + optionText.join(", ").toHtmlEscaped()));

    // The class histogram, one bar a class, named on the axis.
    const auto counts = stats.value("class_counts").toArray();
    auto* bars = new QCPBars(m_histogram->xAxis, m_histogram->yAxis);
    bars->setPen(Qt::NoPen);
    bars->setBrush(QColor(31, 119, 180));
    auto ticker = QSharedPointer<QCPAxisTickerText>::create();
    double highest = 0;
    for (int c = 0; c < counts.size(); ++c) {
        const double n = counts[c].toDouble();
        bars->addData(c, n);
        highest = std::max(highest, n);
        ticker->addTick(c, c < int(dataset->classNames.size()) ? QString::fromStdString(dataset->classNames[size_t(c)])
                                                               : QString::number(c));
    }
    m_histogram->xAxis->setTicker(ticker);
    m_histogram->xAxis->setTickLabelRotation(counts.size() > 6 ? 45 : 0);
    m_histogram->xAxis->setRange(-0.7, counts.size() - 0.3);
    m_histogram->yAxis->setRange(0, highest * 1.1 + 1);
    m_histogram->yAxis->setLabel(tr("training rows"));
    m_histogram->plotLayout()->insertRow(0);
    m_histogram->plotLayout()->addElement(
        0, 0, new QCPTextElement(m_histogram, tr("Rows per class"), QFont(font().family(), 11, QFont::Bold)));
    m_histogram->replot();

    // Per-channel moments of the raw values, and their range.
    const auto mean = stats.value("channel_mean").toArray();
    const auto stdev = stats.value("channel_std").toArray();
    m_statistics->setColumnCount(3);
    m_statistics->setHorizontalHeaderLabels({tr("channel"), tr("mean"), tr("std")});
    m_statistics->setRowCount(mean.size() + 1);
    for (int c = 0; c < mean.size(); ++c) {
        m_statistics->setItem(c, 0, new QTableWidgetItem(QString::number(c)));
        m_statistics->setItem(c, 1, new QTableWidgetItem(QString::number(mean[c].toDouble(), 'f', 3)));
        m_statistics->setItem(c, 2, new QTableWidgetItem(QString::number(stdev[c].toDouble(), 'f', 3)));
    }
    m_statistics->setItem(mean.size(), 0, new QTableWidgetItem(tr("range")));
    m_statistics->setItem(mean.size(), 1, new QTableWidgetItem(QString::number(stats.value("min").toDouble(), 'g', 6)));
    m_statistics->setItem(mean.size(), 2, new QTableWidgetItem(QString::number(stats.value("max").toDouble(), 'g', 6)));

    m_loader = new SourceLoader(this);
    connect(m_loader, &SourceLoader::loaded, this, [this](int, std::shared_ptr<const data::LoadedSource> source) {
        m_rows = source;
        m_samples->setDataset(source->train);
        m_segments->setDataset(source->train);
        m_rowsStatus->setText(
            tr("%1 training rows read from the source").arg(QLocale().toString(qlonglong(source->train.size()))));
        m_rowsStatus->setStyleSheet({});
    });
    connect(m_loader, &SourceLoader::failed, this, [this](int, const QString& message) {
        m_rowsStatus->setText(tr("The rows cannot be read now: %1").arg(message));
        m_rowsStatus->setStyleSheet("color: #b00020");
    });
    train::DataConfig data;
    try {
        data = session::datasetSource(*dataset);
    } catch (const std::exception& e) { // options written by a newer mppdl, say
        m_rowsStatus->setText(tr("The recorded options cannot be read: %1").arg(QString::fromUtf8(e.what())));
        return;
    }
    const auto read = [this, data] {
        m_rowsStatus->setText(tr("reading %1...").arg(QString::fromStdString(data.location)));
        m_loader->load(data.location, data.source);
    };
#ifdef MPPDL_WITH_POSTGRES
    // A project file may come from someone else: its datasets must not make the workbench connect
    // to a server of their choosing unasked. Asked once per server a session.
    static std::set<std::string> approved;
    if (data.location.rfind("pg:", 0) == 0) {
        const std::string server = data::describeServer(data.source.connection);
        if (!approved.count(server)) {
            m_rowsStatus->setText(tr("The rows of this dataset are on a PostgreSQL server: %1. Reading them "
                                     "connects there.")
                                      .arg(QString::fromStdString(server)));
            m_connect = new QPushButton(tr("Connect and Read the Rows"), this);
            m_connect->setObjectName("connectToServer");
            m_rowsRow->addWidget(m_connect);
            connect(m_connect, &QPushButton::clicked, this, [this, server, read] {
                approved.insert(server);
                m_connect->hide();
                read();
            });
            return;
        }
    }
#endif
    read();
}

QString DatasetView::rowsStatusText() const { return m_rowsStatus->text(); }

bool DatasetView::rowsLoading() const { return m_loader && m_loader->busy(); }

QString DatasetView::summaryText() const { return m_summary->text(); }

} // namespace mppdl::ui
