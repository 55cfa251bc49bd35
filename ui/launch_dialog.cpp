#include "ui/launch_dialog.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/model/analysis.h"
#include "mppdl/session/architectures.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/store/project.h"
#include "mppdl/train/devices.h"

#include <algorithm>
#include <limits>

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

namespace mppdl::ui {

namespace {

template <class List>
void fillChoices(QComboBox* box, const List& choices) {
    for (const auto& c : choices) {
        box->addItem(QString::fromUtf8(c.name));
        box->setItemData(box->count() - 1, QString::fromUtf8(c.description), Qt::ToolTipRole);
    }
}

QString shapeText(const model::Shape& shape) {
    QStringList parts;
    for (const auto d : shape)
        parts << QString::number(d);
    return parts.join("x");
}

QDoubleSpinBox* decimalBox(double low, double high, int decimals, double value, QWidget* parent) {
    auto* box = new QDoubleSpinBox(parent);
    box->setRange(low, high);
    box->setDecimals(decimals);
    box->setValue(value);
    return box;
}

QSpinBox* integerBox(int low, int high, int value, QWidget* parent) {
    auto* box = new QSpinBox(parent);
    box->setRange(low, high);
    box->setValue(value);
    return box;
}

} // namespace

LaunchDialog::LaunchDialog(const store::Project& project, QWidget* parent) : QDialog(parent), m_project(project) {
    setWindowTitle(tr("New run"));
    const train::TrainConfig defaults;

    // Data.
    for (const auto& d : project.datasets()) {
        std::optional<data::SourceOptions> source;
        try {
            source = session::datasetSource(d).source;
        } catch (const Error&) { // options of a newer mppdl: read with the defaults
        }
        m_datasets.push_back({QString::fromStdString(d.name + "  (" + d.kind + ", " + d.location + ")"),
                              QString::fromStdString(d.location), source});
    }
    const bool haveFashion = std::any_of(m_datasets.begin(), m_datasets.end(),
                                         [](const DatasetChoice& d) { return d.location == data::kFashionMnistDir; });
    if (!haveFashion && QFileInfo::exists(data::kFashionMnistDir))
        m_datasets.push_back(
            {tr("Fashion-MNIST  (idx, %1)").arg(data::kFashionMnistDir), data::kFashionMnistDir, std::nullopt});
    m_dataset = new QComboBox(this);
    for (const auto& d : m_datasets)
        m_dataset->addItem(d.label);
    m_dataset->addItem(tr("Another source..."));
    m_location = new QLineEdit(this);
    m_location->setPlaceholderText(tr("an IDX directory, CSV, .npy, image folder, or pg:TABLE"));
    auto* browse = new QToolButton(this);
    browse->setText(tr("..."));
    browse->setToolTip(tr("Choose a file or a folder"));
    connect(browse, &QToolButton::clicked, this, [this] {
        const auto path = QFileDialog::getOpenFileName(this, tr("Training data"), m_location->text(),
                                                       tr("Data files (*.gz *.csv *.npy *ubyte*);;All files (*)"));
        if (!path.isEmpty())
            setLocation(path);
    });
    auto* locationRow = new QHBoxLayout;
    locationRow->addWidget(m_location, 1);
    locationRow->addWidget(browse);
    m_limit = integerBox(0, 100000000, 0, this);
    m_limit->setSpecialValueText(tr("all"));
    m_limit->setSingleStep(1000);
    m_limit->setToolTip(tr("Train on the first N rows only, for a quick try"));
    m_valFraction = decimalBox(0.0, 0.9, 2, defaults.data.validationFraction, this);
    m_valFraction->setSingleStep(0.05);
    m_normalize = new QComboBox(this);
    fillChoices(m_normalize, data::normalizationChoices());
    auto* dataBox = new QGroupBox(tr("Data"), this);
    auto* dataForm = new QFormLayout(dataBox);
    dataForm->addRow(tr("Dataset:"), m_dataset);
    dataForm->addRow(tr("Source:"), locationRow);
    dataForm->addRow(tr("Rows:"), m_limit);
    dataForm->addRow(tr("Validation fraction:"), m_valFraction);
    dataForm->addRow(tr("Normalization:"), m_normalize);

    // Model.
    m_architecture = new QComboBox(this);
    for (const auto& a : project.architectures())
        m_architecture->addItem(QString::fromStdString(a.name + "@" + std::to_string(a.latest)),
                                QString::fromStdString(a.name + "@" + std::to_string(a.latest)));
    for (const auto& name : session::bundledArchitectures()) {
        if (project.architecture(name))
            continue; // the project's version stands for it
        m_architecture->addItem(tr("%1 (bundled)").arg(QString::fromStdString(name)), QString::fromStdString(name));
    }
    m_architectureInfo = new QLabel(this);
    m_architectureInfo->setWordWrap(true);
    auto* modelBox = new QGroupBox(tr("Model"), this);
    auto* modelForm = new QFormLayout(modelBox);
    modelForm->addRow(tr("Architecture:"), m_architecture);
    modelForm->addRow(QString(), m_architectureInfo);

    // Strategy and devices.
    m_strategy = new QComboBox(this);
    fillChoices(m_strategy, train::strategyChoices());
    m_segments = integerBox(1, 256, defaults.segments, this);
    m_distribution = new QComboBox(this);
    fillChoices(m_distribution, data::distributionPolicies());
    m_syncEvery = integerBox(0, 1000000, int(defaults.syncEvery), this);
    m_syncEvery->setSpecialValueText(tr("default"));
    m_syncEvery->setToolTip(tr("Minibatches between merges (model averaging) or EASGD's tau"));
    m_device = new QComboBox(this);
    int gpus = 0;
    for (const auto& d : train::listDevices()) {
        m_device->addItem(QString::fromStdString(d.name));
        m_device->setItemData(m_device->count() - 1, QString::fromStdString(d.description), Qt::ToolTipRole);
        gpus += d.name.rfind("cuda", 0) == 0;
    }
    if (gpus > 1) {
        QStringList all;
        for (int g = 0; g < gpus; ++g)
            all << QString::number(g);
        m_device->addItem("cuda:" + all.join(","));
    }
    m_gpusPerHost = integerBox(-1, 64, defaults.gpusPerHost, this);
    m_gpusPerHost->setSpecialValueText(tr("use the device"));
    m_gpusPerHost->setToolTip(
        tr("MADlib's GPUs per host: segments share cuda:0..G-1 round-robin; 0 keeps them on the CPU"));
    auto* strategyBox = new QGroupBox(tr("Strategy and devices"), this);
    auto* strategyForm = new QFormLayout(strategyBox);
    strategyForm->addRow(tr("Strategy:"), m_strategy);
    strategyForm->addRow(tr("Segments:"), m_segments);
    strategyForm->addRow(tr("Distribution:"), m_distribution);
    strategyForm->addRow(tr("Sync every:"), m_syncEvery);
    strategyForm->addRow(tr("Device:"), m_device);
    strategyForm->addRow(tr("GPUs per host:"), m_gpusPerHost);

    // Optimization.
    m_optimizer = new QComboBox(this);
    fillChoices(m_optimizer, train::optimizerChoices());
    m_lr = decimalBox(0.0, 10.0, 5, defaults.optimizer.lr, this);
    m_lr->setSingleStep(0.001);
    m_momentum = decimalBox(0.0, 0.999, 3, defaults.optimizer.momentum, this);
    m_momentum->setSingleStep(0.1);
    m_weightDecay = decimalBox(0.0, 1.0, 6, defaults.optimizer.weightDecay, this);
    m_batchSize = integerBox(1, 1 << 20, int(defaults.batchSize), this);
    m_epochs = integerBox(1, 100000, defaults.epochs, this);
    m_seed = integerBox(0, std::numeric_limits<int>::max(), int(defaults.seed), this);
    m_name = new QLineEdit(this);
    m_name->setPlaceholderText(tr("<architecture>-<id>"));
    auto* optimizerBox = new QGroupBox(tr("Optimization"), this);
    auto* optimizerForm = new QFormLayout(optimizerBox);
    optimizerForm->addRow(tr("Optimizer:"), m_optimizer);
    optimizerForm->addRow(tr("Learning rate:"), m_lr);
    optimizerForm->addRow(tr("Momentum:"), m_momentum);
    optimizerForm->addRow(tr("Weight decay:"), m_weightDecay);
    optimizerForm->addRow(tr("Batch size:"), m_batchSize);
    optimizerForm->addRow(tr("Epochs:"), m_epochs);
    optimizerForm->addRow(tr("Seed:"), m_seed);
    optimizerForm->addRow(tr("Run name:"), m_name);

    m_problems = new QLabel(this);
    m_problems->setObjectName("launchProblems");
    m_problems->setWordWrap(true);
    m_problems->setStyleSheet("color: #b00020");
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Cancel, this);
    m_start = buttons->addButton(tr("Start"), QDialogButtonBox::AcceptRole);
    m_start->setObjectName("startButton");
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

    auto* columns = new QHBoxLayout;
    auto* left = new QVBoxLayout;
    left->addWidget(dataBox);
    left->addWidget(modelBox);
    left->addStretch(1);
    auto* right = new QVBoxLayout;
    right->addWidget(strategyBox);
    right->addWidget(optimizerBox);
    right->addStretch(1);
    columns->addLayout(left, 1);
    columns->addLayout(right, 1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(columns);
    layout->addWidget(m_problems);
    layout->addWidget(buttons);

    connect(m_dataset, &QComboBox::currentIndexChanged, this, &LaunchDialog::chooseDataset);
    connect(m_architecture, &QComboBox::currentIndexChanged, this, &LaunchDialog::describeArchitecture);
    for (auto* box : {m_strategy, m_distribution, m_device, m_optimizer, m_normalize})
        connect(box, &QComboBox::currentIndexChanged, this, &LaunchDialog::check);
    for (auto* box : {m_limit, m_segments, m_syncEvery, m_gpusPerHost, m_batchSize, m_epochs, m_seed})
        connect(box, &QSpinBox::valueChanged, this, &LaunchDialog::check);
    for (auto* box : {m_valFraction, m_lr, m_momentum, m_weightDecay})
        connect(box, &QDoubleSpinBox::valueChanged, this, &LaunchDialog::check);
    connect(m_location, &QLineEdit::textChanged, this, [this](const QString& text) {
        // A location typed by hand is another source, read with the default options.
        const int index = m_dataset->currentIndex();
        if (index < int(m_datasets.size()) && m_datasets[size_t(index)].location != text) {
            QSignalBlocker block(m_dataset);
            m_dataset->setCurrentIndex(m_dataset->count() - 1);
        }
        check();
    });
    chooseDataset(0);
    describeArchitecture();
}

void LaunchDialog::chooseDataset(int index) {
    if (index >= 0 && index < int(m_datasets.size())) {
        QSignalBlocker block(m_location);
        m_location->setText(m_datasets[size_t(index)].location);
    } else {
        m_location->setFocus();
    }
    check();
}

void LaunchDialog::describeArchitecture() {
    const std::string ref = m_architecture->currentData().toString().toStdString();
    m_architectureInfo->clear();
    if (!ref.empty()) {
        try {
            const auto at = ref.rfind('@');
            const auto architecture =
                at == std::string::npos
                    ? model::loadArchitecture(session::resolveArchitecture(ref))
                    : model::parseArchitecture(
                          m_project.architecture(ref.substr(0, at), std::stoi(ref.substr(at + 1))).value().spec, ref);
            const auto a = model::analyze(architecture);
            if (a.ok())
                m_architectureInfo->setText(tr("%1 layers, %2 parameters, %3 MFLOPs per sample; input %4, %5 classes")
                                                .arg(architecture.layers.size())
                                                .arg(QLocale().toString(qlonglong(a.totalParams)))
                                                .arg(double(a.totalFlops) / 1e6, 0, 'f', 2)
                                                .arg(shapeText(a.inputShape))
                                                .arg(a.numClasses()));
            else
                m_architectureInfo->setText(QString::fromStdString(formatProblems(a.problems)));
        } catch (const std::exception& e) {
            m_architectureInfo->setText(QString::fromUtf8(e.what()));
        }
    }
    check();
}

LaunchRequest LaunchDialog::request() const {
    LaunchRequest r;
    auto& c = r.config;
    c = m_base; // what the form does not show (schedule, early stopping...) as the repeated run had it
    // The workbench trains every segment on its own threads; processes are the command line's.
    c.processes = 1;
    const QString location = m_location->text().trimmed();
    const int index = m_dataset->currentIndex();
    c.data.source = {};
    if (index >= 0 && index < int(m_datasets.size()) && m_datasets[size_t(index)].source &&
        m_datasets[size_t(index)].location == location) // the options the dataset was read with
        c.data.source = *m_datasets[size_t(index)].source;
    c.data.location = location.toStdString();
    c.data.source.limit = m_limit->value();
    c.data.validationFraction = m_valFraction->value();
    c.data.normalization = data::parseNormalization(m_normalize->currentText().toStdString());
    c.strategy = m_strategy->currentText().toStdString();
    c.segments = m_segments->value();
    c.distribution = m_distribution->currentText().toStdString();
    c.syncEvery = m_syncEvery->value();
    c.device = m_device->currentText().toStdString();
    c.gpusPerHost = m_gpusPerHost->value();
    c.optimizer.name = m_optimizer->currentText().toStdString();
    c.optimizer.lr = m_lr->value();
    c.optimizer.momentum = m_momentum->value();
    c.optimizer.weightDecay = m_weightDecay->value();
    c.batchSize = m_batchSize->value();
    c.epochs = m_epochs->value();
    c.seed = uint64_t(m_seed->value());
    r.architecture = m_architecture->currentData().toString().toStdString();
    r.name = m_name->text().trimmed().toStdString();
    return r;
}

QStringList LaunchDialog::problems() const {
    QStringList out;
    if (m_location->text().trimmed().isEmpty())
        out << tr("no data source: choose a dataset or type a source");
    if (m_architecture->currentIndex() < 0)
        out << tr("no architecture: the project has none and none are bundled");
    for (const auto& p : train::validate(request().config))
        out << QString::fromStdString(p);
    return out;
}

void LaunchDialog::check() {
    const auto found = problems();
    m_problems->setText(found.join("\n"));
    m_problems->setVisible(!found.isEmpty());
    m_start->setEnabled(found.isEmpty());
}

void LaunchDialog::setRequest(const LaunchRequest& request) {
    m_base = request.config;
    const auto& c = request.config;
    const QString location = QString::fromStdString(c.data.location);
    // The source with the options it was read with; a dataset of the project when it is one.
    int dataset = -1;
    for (size_t i = 0; i < m_datasets.size(); ++i)
        if (m_datasets[i].location == location)
            dataset = int(i);
    if (dataset < 0) {
        m_datasets.push_back({tr("%1  (as the run read it)").arg(location), location, c.data.source});
        m_dataset->insertItem(int(m_datasets.size()) - 1, m_datasets.back().label);
        dataset = int(m_datasets.size()) - 1;
    }
    m_dataset->setCurrentIndex(dataset);
    chooseDataset(dataset);
    m_limit->setValue(int(c.data.source.limit));
    m_valFraction->setValue(c.data.validationFraction);
    m_normalize->setCurrentText(QString::fromLatin1(data::toString(c.data.normalization)));
    const QString reference = QString::fromStdString(request.architecture);
    if (m_architecture->findData(reference) < 0)
        m_architecture->addItem(reference, reference);
    setArchitecture(reference);
    m_strategy->setCurrentText(QString::fromStdString(c.strategy));
    m_segments->setValue(c.segments);
    m_distribution->setCurrentText(QString::fromStdString(c.distribution));
    m_syncEvery->setValue(int(c.syncEvery));
    if (m_device->findText(QString::fromStdString(c.device)) < 0)
        m_device->addItem(QString::fromStdString(c.device));
    m_device->setCurrentText(QString::fromStdString(c.device));
    m_gpusPerHost->setValue(c.gpusPerHost);
    m_optimizer->setCurrentText(QString::fromStdString(c.optimizer.name));
    m_lr->setValue(c.optimizer.lr);
    m_momentum->setValue(c.optimizer.momentum);
    m_weightDecay->setValue(c.optimizer.weightDecay);
    m_batchSize->setValue(int(c.batchSize));
    m_epochs->setValue(c.epochs);
    m_seed->setValue(int(c.seed));
    m_name->setText(QString::fromStdString(request.name));
    check();
}

void LaunchDialog::setLocation(const QString& location) { m_location->setText(location); }

void LaunchDialog::setArchitecture(const QString& reference) {
    const int index = m_architecture->findData(reference);
    if (index >= 0)
        m_architecture->setCurrentIndex(index);
}

void LaunchDialog::setStrategy(const QString& name, int segments) {
    m_strategy->setCurrentText(name);
    m_segments->setValue(segments);
}

void LaunchDialog::setEpochs(int epochs) { m_epochs->setValue(epochs); }
void LaunchDialog::setLearningRate(double lr) { m_lr->setValue(lr); }
void LaunchDialog::setLimit(int rows) { m_limit->setValue(rows); }

} // namespace mppdl::ui
