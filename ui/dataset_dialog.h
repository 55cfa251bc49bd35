#pragma once

#include "mppdl/data/source.h"

#include <QDialog>
#include <QTimer>

#include <memory>
#include <string>
#include <vector>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QSpinBox;
class QTabWidget;
class QTreeWidget;

namespace mppdl::ui {

class SamplesView;
class SourceLoader;

/// Adds a dataset to the project (File > Add Dataset): a file or folder (IDX, CSV, NPY, image
/// folder, with the reader's options) or a PostgreSQL/Greenplum table (a connection as a URI or as
/// host, port, database and user; Test Connection; a browser of the server's tables; a mapping of
/// the table's columns to features, label and id). Whatever the form describes is read again in
/// the background as it is edited, and a preview of its rows (images or a table) shows what mppdl
/// makes of it, or the reader's error naming the file and line or the table and column. A password
/// typed here is used for the connection and never recorded.
class DatasetDialog : public QDialog {
    Q_OBJECT
public:
    explicit DatasetDialog(QWidget* parent = nullptr);
    ~DatasetDialog() override;

    /// The source as `mppdl train --data` names it: a path, or pg:TABLE.
    std::string location() const;
    /// The reader's options, with the row limit and the connection (password included).
    data::SourceOptions options() const;

    /// Whether the last preview read the source (Add is enabled then).
    bool previewOk() const { return m_previewOk; }
    QString previewStatus() const;
    QString connectionStatus() const;
    SamplesView* preview() const { return m_preview; }
    QTreeWidget* tableList() const { return m_tables; }
    QComboBox* labelColumn() const { return m_label; }
    QListWidget* featureColumns() const { return m_features; }

    // The form, for tests and callers that preset it.
    void setFile(const QString& path);
    /// A libpq URI or keyword string; switches to the database page.
    void setConnection(const QString& connection, const QString& password = {});
    /// Tests the connection and, when it works, lists the server's tables (in the background).
    void testConnection();
    /// A source as `mppdl train --data` names it: a path, or pg:TABLE with its connection (then
    /// the connection is tested and the table chosen once listed).
    void setSource(const QString& location, const QString& connection = {});
    /// The connection the table page makes: its URI or keywords as typed, else the host, port,
    /// database and user fields as a libpq keyword string (each value quoted), with the password.
    std::string connectionString() const;
    /// Selects a table of the list ("schema.name") and maps its columns.
    bool chooseTable(const QString& qualified);
    void setLimit(int rows);

Q_SIGNALS:
    /// A preview ended, read or refused.
    void previewed();
    /// A connection test ended; the table list is filled when it worked.
    void connectionTested(bool ok);

private:
    void schedulePreview();
    void startPreview();
    void showTable(int index);

    struct Table;
    std::vector<std::shared_ptr<Table>> m_tableInfo;

    QTabWidget* m_pages = nullptr;
    // File.
    QLineEdit* m_path = nullptr;
    QComboBox* m_kind = nullptr;
    QLineEdit* m_csvLabel = nullptr;
    QLineEdit* m_shape = nullptr;
    QComboBox* m_header = nullptr;
    QLineEdit* m_delimiter = nullptr;
    // Database.
    QLineEdit* m_uri = nullptr;
    QLineEdit* m_host = nullptr;
    QLineEdit* m_port = nullptr;
    QLineEdit* m_database = nullptr;
    QLineEdit* m_user = nullptr;
    QLineEdit* m_password = nullptr;
    QLabel* m_connectionStatus = nullptr;
    QTreeWidget* m_tables = nullptr;
    QListWidget* m_features = nullptr;
    QComboBox* m_label = nullptr;
    QComboBox* m_id = nullptr;
    QComboBox* m_distributedBy = nullptr;
    QComboBox* m_bytea = nullptr;
    QLineEdit* m_pgShape = nullptr;
    // Both.
    QSpinBox* m_limit = nullptr;
    QLabel* m_previewStatus = nullptr;
    SamplesView* m_preview = nullptr;
    QPushButton* m_add = nullptr;

    SourceLoader* m_loader = nullptr;
    QTimer m_previewTimer;
    bool m_previewOk = false;
    bool m_filling = false;
};

} // namespace mppdl::ui
