#pragma once

#include "ui/training_jobs.h"

#include <QDialog>

#include <optional>

#include <string>
#include <vector>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

/// The run launcher: a dataset (one the project has, or any source mppdl train reads), an
/// architecture (a project version or a bundled one), the strategy with its segments and
/// distribution policy, the devices (and MADlib's GPUs per host), the optimizer and its
/// hyperparameters, epochs and seed. Every choice list is the engine's own table. What is wrong with
/// the settings is listed under the form as it is edited, and Start stays disabled until nothing is.
class LaunchDialog : public QDialog {
    Q_OBJECT
public:
    LaunchDialog(const store::Project& project, QWidget* parent = nullptr);

    /// The run the form describes.
    LaunchRequest request() const;
    /// What is wrong with the settings now (empty: Start is enabled).
    QStringList problems() const;

    /// Fills the form with a run's settings (Runs > Repeat Run): its source and options, the
    /// architecture reference, every hyperparameter.
    void setRequest(const LaunchRequest& request);

    // For tests and callers that preset a run.
    void setLocation(const QString& location);
    void setArchitecture(const QString& reference);
    void setStrategy(const QString& name, int segments);
    void setEpochs(int epochs);
    void setLearningRate(double lr);
    void setLimit(int rows);

private:
    void check();
    void chooseDataset(int index);
    void describeArchitecture();

    struct DatasetChoice {
        QString label;
        QString location;
        std::optional<data::SourceOptions> source; ///< the options it was read with; none: the defaults
    };
    std::vector<DatasetChoice> m_datasets;
    train::TrainConfig m_base; ///< the settings the form starts from
    const store::Project& m_project;

    QComboBox* m_dataset = nullptr;
    QLineEdit* m_location = nullptr;
    QSpinBox* m_limit = nullptr;
    QDoubleSpinBox* m_valFraction = nullptr;
    QComboBox* m_normalize = nullptr;
    QComboBox* m_architecture = nullptr;
    QLabel* m_architectureInfo = nullptr;
    QComboBox* m_strategy = nullptr;
    QSpinBox* m_segments = nullptr;
    QComboBox* m_distribution = nullptr;
    QSpinBox* m_syncEvery = nullptr;
    QComboBox* m_device = nullptr;
    QSpinBox* m_gpusPerHost = nullptr;
    QComboBox* m_optimizer = nullptr;
    QDoubleSpinBox* m_lr = nullptr;
    QDoubleSpinBox* m_momentum = nullptr;
    QDoubleSpinBox* m_weightDecay = nullptr;
    QSpinBox* m_batchSize = nullptr;
    QSpinBox* m_epochs = nullptr;
    QSpinBox* m_seed = nullptr;
    QLineEdit* m_name = nullptr;
    QLabel* m_problems = nullptr;
    QPushButton* m_start = nullptr;
};

} // namespace mppdl::ui
