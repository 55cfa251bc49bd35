#pragma once

// Pieces the dataset views share: reading a source off the GUI thread, a grid of its samples (or a
// table of its rows), and how N segments would hold it.

#include "mppdl/data/dataset.h"
#include "mppdl/data/preview.h"
#include "mppdl/data/source.h"

#include <QApplication>
#include <QObject>
#include <QPointer>
#include <QThreadPool>
#include <QWidget>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

class QComboBox;
class QGridLayout;
class QLabel;
class QSpinBox;
class QTableWidget;

namespace mppdl::ui {

/// Runs `work` on the global thread pool, then `done` with its result, or `failed` with the
/// message of what it threw, on the GUI thread; neither when `receiver` is gone by then. For what
/// may take long (reading a table, reaching a server) and must not stall the window.
template <class T>
void inBackground(QObject* receiver, std::function<T()> work, std::function<void(T)> done,
                  std::function<void(const QString&)> failed) {
    QPointer<QObject> alive(receiver);
    QThreadPool::globalInstance()->start([=] {
        std::shared_ptr<T> result;
        QString error;
        try {
            result = std::make_shared<T>(work());
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        }
        // Through the application object, which outlives the receiver; checked on its thread.
        QMetaObject::invokeMethod(
            qApp,
            [=] {
                if (!alive)
                    return;
                if (result)
                    done(*result);
                else
                    failed(error);
            },
            Qt::QueuedConnection);
    });
}

/// Reads sources on the global thread pool and hands the result to the GUI thread. Only the
/// latest request's answer is delivered; earlier ones still running are dropped when they end.
class SourceLoader : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;
    /// Starts reading; returns the request's number.
    int load(const std::string& location, const data::SourceOptions& options);
    /// Whether a request is still being read.
    bool busy() const { return m_pending > 0; }

Q_SIGNALS:
    void loaded(int request, std::shared_ptr<const mppdl::data::LoadedSource> source);
    /// The reader's message, which names the file and line, or the table and column.
    void failed(int request, const QString& message);

private:
    int m_latest = 0;
    int m_pending = 0;
};

/// Samples of a dataset: a grid of images with their class for image data, a table of rows (class
/// and the first features) otherwise.
class SamplesView : public QWidget {
    Q_OBJECT
public:
    explicit SamplesView(QWidget* parent = nullptr);
    /// Shows `count` rows of `dataset`, spread over its classes.
    void setDataset(const data::Dataset& dataset, int count = 32);
    /// Shows these rows of samples shaped `sampleShape`; `captions`, when given, replace the class
    /// names under them.
    void setRows(const std::vector<data::RowPreview>& rows, const std::vector<std::string>& classNames,
                 const std::vector<int64_t>& sampleShape, const QStringList& captions = {});
    void clear();
    /// Images shown (0 for table rows).
    int imageCount() const { return m_images; }
    QTableWidget* rowTable() const { return m_table; }

private:
    QWidget* m_grid = nullptr;
    QGridLayout* m_gridLayout = nullptr;
    QTableWidget* m_table = nullptr;
    int m_images = 0;
};

/// How N segments would hold a dataset under a distribution policy: rows and the class histogram of
/// each segment and the skew, recomputed as N, the policy or the seed change.
class SegmentsView : public QWidget {
    Q_OBJECT
public:
    explicit SegmentsView(QWidget* parent = nullptr);
    void setDataset(const data::Dataset& dataset);
    void setSegments(int segments, const QString& policy);
    QTableWidget* table() const { return m_table; }
    QString skewText() const;

private:
    void update();

    data::Dataset m_dataset;
    QSpinBox* m_segments = nullptr;
    QComboBox* m_policy = nullptr;
    QSpinBox* m_seed = nullptr;
    QTableWidget* m_table = nullptr;
    QLabel* m_skew = nullptr;
};

} // namespace mppdl::ui
