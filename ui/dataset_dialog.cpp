#include "ui/dataset_dialog.h"

#include "ui/dataset_preview.h"

#ifdef MPPDL_WITH_POSTGRES
#include "mppdl/data/catalog.h"
#endif

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace mppdl::ui {

namespace {

constexpr int kPreviewRows = 256; // rows read for a preview, at most
constexpr int kPreviewDelayMs = 400;

/// A table name as pg:TABLE takes it: plain where SQL would take it unquoted, else quoted.
QString sqlName(const QString& name) {
    static const QRegularExpression plain("^[a-z_][a-z0-9_$]*$");
    if (plain.match(name).hasMatch())
        return name;
    QString quoted = name;
    quoted.replace('"', "\"\"");
    return '"' + quoted + '"';
}

/// "1,28,28" or "1x28x28" as a shape; empty (with `ok` false) for anything else but blank text.
std::vector<int64_t> parseShape(const QString& text, bool* ok) {
    std::vector<int64_t> shape;
    *ok = true;
    for (const auto& part : text.split(QRegularExpression("[,x ]"), Qt::SkipEmptyParts)) {
        bool number = false;
        const qlonglong d = part.toLongLong(&number);
        if (!number || d <= 0) {
            *ok = false;
            return {};
        }
        shape.push_back(d);
    }
    return shape;
}

QLineEdit* lineEdit(const QString& placeholder, QWidget* parent) {
    auto* edit = new QLineEdit(parent);
    edit->setPlaceholderText(placeholder);
    return edit;
}

} // namespace

/// A table of the server, as listed.
struct DatasetDialog::Table {
    QString schema, name;
    std::vector<std::pair<QString, QString>> columns; ///< (name, type)
};

DatasetDialog::DatasetDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Add a dataset"));
    m_pages = new QTabWidget(this);

    // A file or folder.
    auto* file = new QWidget(this);
    m_path = lineEdit(tr("an IDX directory or file, a CSV/CSV.gz, a .npy, or an image folder"), file);
    auto* pickFile = new QPushButton(tr("File..."), file);
    auto* pickFolder = new QPushButton(tr("Folder..."), file);
    connect(pickFile, &QPushButton::clicked, this, [this] {
        const auto path = QFileDialog::getOpenFileName(this, tr("A data file"), m_path->text(),
                                                       tr("Data files (*.csv *.gz *.npy *ubyte*);;All files (*)"));
        if (!path.isEmpty())
            setFile(path);
    });
    connect(pickFolder, &QPushButton::clicked, this, [this] {
        const auto path = QFileDialog::getExistingDirectory(this, tr("An IDX or image folder"), m_path->text());
        if (!path.isEmpty())
            setFile(path);
    });
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(m_path, 1);
    pathRow->addWidget(pickFile);
    pathRow->addWidget(pickFolder);
    m_kind = new QComboBox(file);
    m_kind->addItem("auto");
    for (const auto& k : data::sourceKinds())
        if (k.readsFiles) {
            m_kind->addItem(QString::fromUtf8(k.name));
            m_kind->setItemData(m_kind->count() - 1, QString::fromUtf8(k.description), Qt::ToolTipRole);
        }
    m_csvLabel = lineEdit(tr("CSV: column name or index (default: the last); NPY: labels file"), file);
    m_shape = lineEdit(tr("e.g. 1,28,28: CSV/NPY rows reshaped, images resized"), file);
    m_header = new QComboBox(file);
    m_header->addItems({tr("detect"), tr("yes"), tr("no")});
    m_delimiter = new QLineEdit(",", file);
    m_delimiter->setMaxLength(3);
    auto* fileForm = new QFormLayout(file);
    fileForm->addRow(tr("Path:"), pathRow);
    fileForm->addRow(tr("Kind:"), m_kind);
    fileForm->addRow(tr("Label:"), m_csvLabel);
    fileForm->addRow(tr("Sample shape:"), m_shape);
    fileForm->addRow(tr("CSV header:"), m_header);
    fileForm->addRow(tr("CSV delimiter:"), m_delimiter);
    m_pages->addTab(file, tr("File or folder"));

    // A PostgreSQL or Greenplum table.
    auto* database = new QWidget(this);
    m_uri = lineEdit(tr("postgresql://user@host:5432/db, or keywords host=... dbname=..."), database);
    m_host = lineEdit("localhost", database);
    m_port = lineEdit("5432", database);
    m_database = lineEdit(tr("database"), database);
    m_user = lineEdit(tr("user"), database);
    m_host->setObjectName("host");
    m_port->setObjectName("port");
    m_database->setObjectName("database");
    m_user->setObjectName("user");
    m_password = lineEdit(tr("used, never recorded (or PGPASSWORD, ~/.pgpass)"), database);
    m_password->setEchoMode(QLineEdit::Password);
    auto* test = new QPushButton(tr("Test Connection"), database);
    test->setObjectName("testConnection");
    connect(test, &QPushButton::clicked, this, &DatasetDialog::testConnection);
    m_connectionStatus = new QLabel(database);
    m_connectionStatus->setWordWrap(true);
    auto* connectionForm = new QFormLayout;
    connectionForm->addRow(tr("URI or keywords:"), m_uri);
    auto* hostRow = new QHBoxLayout;
    hostRow->addWidget(m_host, 3);
    hostRow->addWidget(new QLabel(tr("port"), database));
    hostRow->addWidget(m_port, 1);
    connectionForm->addRow(tr("or host:"), hostRow);
    auto* userRow = new QHBoxLayout;
    userRow->addWidget(m_database);
    userRow->addWidget(new QLabel(tr("user"), database));
    userRow->addWidget(m_user);
    connectionForm->addRow(tr("database:"), userRow);
    connectionForm->addRow(tr("Password:"), m_password);
    auto* testRow = new QHBoxLayout;
    testRow->addWidget(test);
    testRow->addWidget(m_connectionStatus, 1);
    connectionForm->addRow(QString(), testRow);

    m_tables = new QTreeWidget(database);
    m_tables->setHeaderLabels({tr("table"), tr("kind"), tr("rows (est.)"), tr("columns")});
    m_tables->setRootIsDecorated(false);
    m_tables->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    connect(m_tables, &QTreeWidget::currentItemChanged, this,
            [this](QTreeWidgetItem* item) { showTable(item ? m_tables->indexOfTopLevelItem(item) : -1); });
    m_features = new QListWidget(database);
    m_features->setToolTip(tr("One real[]/bytea column, or numeric columns; none checked: the array or bytea "
                              "column, else every numeric column but the label and id"));
    m_label = new QComboBox(database);
    m_id = new QComboBox(database);
    m_distributedBy = new QComboBox(database);
    m_distributedBy->setToolTip(tr("Hashed into segments for the 'database' distribution (default: the id)"));
    m_bytea = new QComboBox(database);
    m_bytea->addItems({"uint8", "float32"});
    m_pgShape = lineEdit(tr("e.g. 1,28,28"), database);
    auto* mapping = new QGroupBox(tr("Columns"), database);
    auto* mappingForm = new QFormLayout(mapping);
    mappingForm->addRow(tr("Features:"), m_features);
    mappingForm->addRow(tr("Label:"), m_label);
    mappingForm->addRow(tr("Id:"), m_id);
    mappingForm->addRow(tr("Distributed by:"), m_distributedBy);
    mappingForm->addRow(tr("bytea holds:"), m_bytea);
    mappingForm->addRow(tr("Sample shape:"), m_pgShape);
    auto* browse = new QSplitter(Qt::Horizontal, database);
    browse->addWidget(m_tables);
    browse->addWidget(mapping);
    auto* databaseLayout = new QVBoxLayout(database);
    databaseLayout->addLayout(connectionForm);
    databaseLayout->addWidget(browse, 1);
#ifndef MPPDL_WITH_POSTGRES
    database->setEnabled(false);
    m_connectionStatus->setText(tr("This mppdl was built without PostgreSQL (MPPDL_POSTGRES=OFF)."));
#endif
    m_pages->addTab(database, tr("PostgreSQL / Greenplum table"));

    // The preview, for both.
    m_limit = new QSpinBox(this);
    m_limit->setRange(0, 100000000);
    m_limit->setSpecialValueText(tr("all"));
    m_limit->setSingleStep(1000);
    m_limit->setToolTip(tr("Keep only the first N training rows (0: all)"));
    m_previewStatus = new QLabel(this);
    m_previewStatus->setObjectName("previewStatus");
    m_previewStatus->setWordWrap(true);
    m_preview = new SamplesView(this);
    m_preview->setMinimumHeight(200);
    auto* limitRow = new QHBoxLayout;
    limitRow->addWidget(new QLabel(tr("Rows:"), this));
    limitRow->addWidget(m_limit);
    limitRow->addSpacing(12);
    limitRow->addWidget(m_previewStatus, 1);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Cancel, this);
    m_add = buttons->addButton(tr("Add to Project"), QDialogButtonBox::AcceptRole);
    m_add->setObjectName("addDataset");
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_pages, 3);
    layout->addLayout(limitRow);
    layout->addWidget(m_preview, 2);
    layout->addWidget(buttons);
    resize(960, 680);

    m_loader = new SourceLoader(this);
    connect(m_loader, &SourceLoader::loaded, this, [this](int, std::shared_ptr<const data::LoadedSource> source) {
        m_previewOk = true;
        const auto schema = source->schema();
        m_previewStatus->setStyleSheet({});
        m_previewStatus->setText(tr("%1: samples %2 %3, %4 classes; the first %5 training rows read%6")
                                     .arg(QString::fromStdString(source->kind))
                                     .arg(QString::fromStdString(data::formatShape(schema.sampleShape)))
                                     .arg(QString::fromStdString(schema.dtype))
                                     .arg(schema.classNames.size())
                                     .arg(source->train.size())
                                     .arg(schema.testRows > 0 ? tr(", and a test split") : QString()));
        m_preview->setDataset(source->train);
        m_add->setEnabled(true);
        Q_EMIT previewed();
    });
    connect(m_loader, &SourceLoader::failed, this, [this](int, const QString& message) {
        m_previewOk = false;
        m_previewStatus->setStyleSheet("color: #b00020");
        m_previewStatus->setText(message);
        m_preview->clear();
        m_add->setEnabled(false);
        Q_EMIT previewed();
    });
    m_previewTimer.setSingleShot(true);
    m_previewTimer.setInterval(kPreviewDelayMs);
    connect(&m_previewTimer, &QTimer::timeout, this, &DatasetDialog::startPreview);
    for (auto* edit : {m_path, m_csvLabel, m_shape, m_delimiter, m_pgShape})
        connect(edit, &QLineEdit::textChanged, this, &DatasetDialog::schedulePreview);
    for (auto* box : {m_kind, m_header, m_label, m_id, m_distributedBy, m_bytea})
        connect(box, &QComboBox::currentIndexChanged, this, &DatasetDialog::schedulePreview);
    connect(m_features, &QListWidget::itemChanged, this, &DatasetDialog::schedulePreview);
    connect(m_limit, &QSpinBox::valueChanged, this, &DatasetDialog::schedulePreview);
    connect(m_pages, &QTabWidget::currentChanged, this, &DatasetDialog::schedulePreview);
    m_add->setEnabled(false);
    m_previewStatus->setText(tr("Choose a file or a table: a preview of its rows appears here."));
}

DatasetDialog::~DatasetDialog() = default;

void DatasetDialog::setFile(const QString& path) {
    m_pages->setCurrentIndex(0);
    m_path->setText(path);
}

void DatasetDialog::setConnection(const QString& connection, const QString& password) {
    m_pages->setCurrentIndex(1);
    m_uri->setText(connection);
    m_password->setText(password);
}

void DatasetDialog::setLimit(int rows) { m_limit->setValue(rows); }

QString DatasetDialog::previewStatus() const { return m_previewStatus->text(); }
QString DatasetDialog::connectionStatus() const { return m_connectionStatus->text(); }

namespace {

/// `key='value'` as libpq reads it: quoted, with backslashes and quotes escaped, so that a value
/// with a space or a quote (a database "sales 2024", a password) stays one value and adds no
/// keyword of its own.
QString keyword(const char* key, QString value) {
    value.replace('\\', "\\\\").replace('\'', "\\'");
    return QString("%1='%2'").arg(key, value);
}

} // namespace

std::string DatasetDialog::connectionString() const {
    QString connection = m_uri->text().trimmed();
    const bool uri = connection.startsWith("postgres://") || connection.startsWith("postgresql://");
    if (connection.isEmpty()) {
        QStringList keywords;
        auto add = [&](const char* key, const QLineEdit* edit) {
            if (!edit->text().trimmed().isEmpty())
                keywords << keyword(key, edit->text().trimmed());
        };
        add("host", m_host);
        add("port", m_port);
        add("dbname", m_database);
        add("user", m_user);
        connection = keywords.join(' ');
    }
    // The password joins a keyword string; a URI carries its own (or PGPASSWORD does).
    if (!m_password->text().isEmpty() && !uri)
        connection += " " + keyword("password", m_password->text());
    return connection.trimmed().toStdString();
}

void DatasetDialog::testConnection() {
#ifdef MPPDL_WITH_POSTGRES
    m_connectionStatus->setStyleSheet({});
    m_connectionStatus->setText(tr("connecting..."));
    const std::string connection = connectionString();
    struct Found {
        data::ServerInfo server;
        std::vector<data::TableInfo> tables;
    };
    inBackground<Found>(
        this,
        [connection] {
            return Found{data::serverInfo(connection), data::listTables(connection)};
        },
        [this](const Found& found) {
            m_connectionStatus->setText(
                tr("%1: %2%3")
                    .arg(QString::fromStdString(found.server.version), QString::fromStdString(found.server.connection))
                    .arg(found.server.greenplum ? tr(", %1 primary segments").arg(found.server.segments) : QString()));
            m_tables->clear();
            m_tableInfo.clear();
            for (const auto& t : found.tables) {
                auto table = std::make_shared<Table>();
                table->schema = QString::fromStdString(t.schema);
                table->name = QString::fromStdString(t.name);
                for (const auto& [name, type] : t.columns)
                    table->columns.emplace_back(QString::fromStdString(name), QString::fromStdString(type));
                m_tableInfo.push_back(table);
                new QTreeWidgetItem(m_tables, {table->schema + "." + table->name, QString::fromStdString(t.kind),
                                               t.estimatedRows >= 0 ? QString::number(t.estimatedRows) : tr("?"),
                                               QString::number(t.columns.size())});
            }
            Q_EMIT connectionTested(true);
        },
        [this](const QString& message) {
            m_connectionStatus->setStyleSheet("color: #b00020");
            m_connectionStatus->setText(message);
            Q_EMIT connectionTested(false);
        });
#endif
}

void DatasetDialog::setSource(const QString& location, const QString& connection) {
    if (!location.startsWith("pg:")) {
        setFile(location);
        return;
    }
    setConnection(connection);
    // A table named without its schema is the first of that name listed.
    const QString table = location.mid(3);
    auto once = std::make_shared<QMetaObject::Connection>();
    *once = connect(this, &DatasetDialog::connectionTested, this, [this, table, once](bool ok) {
        disconnect(*once);
        if (ok && !chooseTable(table))
            for (int i = 0; i < m_tables->topLevelItemCount(); ++i)
                if (m_tables->topLevelItem(i)->text(0).section('.', 1) == table) {
                    m_tables->setCurrentItem(m_tables->topLevelItem(i));
                    break;
                }
    });
    testConnection();
}

bool DatasetDialog::chooseTable(const QString& qualified) {
    for (int i = 0; i < m_tables->topLevelItemCount(); ++i)
        if (m_tables->topLevelItem(i)->text(0) == qualified) {
            m_tables->setCurrentItem(m_tables->topLevelItem(i));
            return true;
        }
    return false;
}

void DatasetDialog::showTable(int index) {
    m_filling = true;
    m_features->clear();
    for (auto* box : {m_label, m_id, m_distributedBy})
        box->clear();
    if (index >= 0 && index < int(m_tableInfo.size())) {
        const auto& table = *m_tableInfo[size_t(index)];
        m_id->addItem(tr("(none)"), QString());
        m_distributedBy->addItem(tr("(the id)"), QString());
        for (const auto& [name, type] : table.columns) {
            auto* item = new QListWidgetItem(name + "  (" + type + ")", m_features);
            item->setData(Qt::UserRole, name);
            item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
            item->setCheckState(Qt::Unchecked);
            m_label->addItem(name, name);
            m_id->addItem(name, name);
            m_distributedBy->addItem(name, name);
        }
        // The engine's defaults: a column named label, one named id.
        if (const int label = m_label->findData("label"); label >= 0)
            m_label->setCurrentIndex(label);
        if (const int id = m_id->findData("id"); id >= 0)
            m_id->setCurrentIndex(id);
    }
    m_filling = false;
    schedulePreview();
}

std::string DatasetDialog::location() const {
    if (m_pages->currentIndex() == 0)
        return m_path->text().trimmed().toStdString();
    auto* item = m_tables->currentItem();
    if (!item)
        return {};
    const auto& table = *m_tableInfo[size_t(m_tables->indexOfTopLevelItem(item))];
    return ("pg:" + sqlName(table.schema) + "." + sqlName(table.name)).toStdString();
}

data::SourceOptions DatasetDialog::options() const {
    data::SourceOptions o;
    o.limit = m_limit->value();
    bool shapeOk = true;
    if (m_pages->currentIndex() == 0) {
        o.kind = m_kind->currentText().toStdString();
        o.label = m_csvLabel->text().trimmed().toStdString();
        o.shape = parseShape(m_shape->text(), &shapeOk);
        if (m_header->currentIndex() > 0)
            o.header = m_header->currentIndex() == 1;
        const QString delimiter = m_delimiter->text();
        o.delimiter = delimiter == "tab" || delimiter == "\\t" ? '\t'
                      : delimiter.isEmpty()                    ? ','
                                                               : delimiter[0].toLatin1();
    } else {
        o.connection = connectionString();
        o.label = m_label->currentData().toString().toStdString();
        o.id = m_id->currentData().toString().toStdString();
        o.distributedBy = m_distributedBy->currentData().toString().toStdString();
        o.bytea = m_bytea->currentText().toStdString();
        o.shape = parseShape(m_pgShape->text(), &shapeOk);
        for (int i = 0; i < m_features->count(); ++i)
            if (m_features->item(i)->checkState() == Qt::Checked)
                o.features.push_back(m_features->item(i)->data(Qt::UserRole).toString().toStdString());
    }
    return o;
}

void DatasetDialog::schedulePreview() {
    if (!m_filling)
        m_previewTimer.start();
}

void DatasetDialog::startPreview() {
    const auto where = location();
    if (where.empty())
        return;
    bool shapeOk = true;
    parseShape(m_pages->currentIndex() == 0 ? m_shape->text() : m_pgShape->text(), &shapeOk);
    if (!shapeOk) {
        m_previewOk = false;
        m_previewStatus->setStyleSheet("color: #b00020");
        m_previewStatus->setText(tr("sample shape: expected positive integers like 1,28,28"));
        m_add->setEnabled(false);
        Q_EMIT previewed();
        return;
    }
    auto o = options();
    o.limit = o.limit > 0 ? std::min<int64_t>(o.limit, kPreviewRows) : kPreviewRows;
    m_previewStatus->setStyleSheet({});
    m_previewStatus->setText(tr("reading %1...").arg(QString::fromStdString(where)));
    m_loader->load(where, o);
}

} // namespace mppdl::ui
