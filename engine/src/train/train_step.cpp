#include "train_step.h"

#include <cmath>
#include <new>
#include <sstream>
#include <string>

namespace mppdl::train {

EpochSums::EpochSums(const torch::Device& device)
    : lossSum(torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device))),
      correct(torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device))) {}

StepFigures trainMinibatch(model::GraphModule& module, torch::optim::Optimizer& optimizer, const torch::Tensor& x,
                           const torch::Tensor& y, const torch::Tensor& order, int64_t begin, int64_t end,
                           bool stepOptimizer, EpochSums& sums) {
    const auto index = order.slice(0, begin, end);
    const auto xb = x.index_select(0, index);
    const auto yb = y.index_select(0, index);
    const auto logits = module->forwardLogits(xb);
    const auto loss = torch::nn::functional::cross_entropy(logits, yb);
    optimizer.zero_grad();
    loss.backward();
    if (stepOptimizer)
        optimizer.step();
    torch::NoGradGuard noGrad;
    sums.lossSum += loss.detach().to(torch::kDouble) * double(end - begin);
    auto hits = logits.argmax(1).eq(yb).sum();
    sums.correct += hits;
    return {loss, hits};
}

DataError nonFiniteLoss(int epoch, int64_t step, bool exact, int segment) {
    std::ostringstream m;
    m << "the loss became " << (exact ? "" : "non-finite ") << "NaN or infinite in epoch " << epoch;
    if (segment >= 0)
        m << " on segment " << segment;
    m << (exact ? ", step " : " at or before step ") << step
      << " (lower the learning rate, or check the data for NaN values)";
    return DataError(m.str());
}

float checkedLoss(const StepFigures& figures, int epoch, int64_t step, int segment) {
    const float value = figures.loss.item<float>();
    if (!std::isfinite(value))
        throw nonFiniteLoss(epoch, step, true, segment);
    return value;
}

namespace {

bool outOfMemory(const c10::Error& e, const std::string& what) {
    // CUDA's caching allocator throws OutOfMemoryError; the CPU allocator a plain c10::Error.
    return dynamic_cast<const c10::OutOfMemoryError*>(&e) || what.find("out of memory") != std::string::npos ||
           what.find("Out of Memory") != std::string::npos || what.find("can't allocate memory") != std::string::npos;
}

} // namespace

std::exception_ptr asEngineError(std::exception_ptr failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const Error&) {
        return failure;
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        const std::string line = what.substr(0, what.find('\n'));
        if (outOfMemory(e, what))
            return std::make_exception_ptr(
                DeviceError("the device ran out of memory: " + line + " (try a smaller --batch-size or network)"));
        return std::make_exception_ptr(InternalError("libtorch: " + line));
    } catch (const std::bad_alloc&) {
        return std::make_exception_ptr(DeviceError("out of memory (try a smaller --batch-size or network)"));
    } catch (const std::exception& e) {
        return std::make_exception_ptr(InternalError(e.what()));
    } catch (...) {
        return std::make_exception_ptr(InternalError("an unknown failure"));
    }
}

} // namespace mppdl::train
