#include "segments.h"

#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <cstring>

namespace mppdl::train {

void setThreadTeam(int threads) {
    at::internal::lazy_init_num_threads(); // first, or a later lazy init would undo what follows
    using SetThreads = void (*)(int);
    static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    if (set)
        set(threads);
}

SegmentPool::SegmentPool(int workers, int team) {
    for (int w = 0; w < workers; ++w)
        m_threads.emplace_back([this, w, team] { work(w, team); });
}

SegmentPool::~SegmentPool() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_quit = true;
    }
    m_start.notify_all();
    for (auto& t : m_threads)
        t.join();
}

void SegmentPool::work(int worker, int team) {
    setThreadTeam(team);
    uint64_t seen = 0;
    for (;;) {
        size_t count;
        const std::function<void(size_t)>* job;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_start.wait(lock, [&] { return m_quit || m_generation != seen; });
            if (m_quit)
                return;
            seen = m_generation;
            count = m_count;
            job = m_job;
        }
        for (size_t i = size_t(worker); i < count; i += m_threads.size()) {
            try {
                (*job)(i);
            } catch (...) {
                failed = true;
                std::lock_guard<std::mutex> lock(m_mutex);
                m_errors[i] = std::current_exception();
            }
        }
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            --m_busy;
        }
        m_done.notify_one();
    }
}

void SegmentPool::run(size_t count, const std::function<void(size_t)>& job, const std::function<void()>& whileWaiting) {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_count = count;
        m_job = &job;
        m_errors.assign(count, nullptr);
        m_busy = int(m_threads.size());
        ++m_generation;
    }
    m_start.notify_all();
    std::unique_lock<std::mutex> lock(m_mutex);
    while (m_busy > 0) {
        if (m_done.wait_for(lock, std::chrono::milliseconds(10), [&] { return m_busy == 0; }))
            break;
        lock.unlock();
        whileWaiting();
        lock.lock();
    }
    for (auto& e : m_errors)
        if (e)
            std::rethrow_exception(e);
}

std::vector<torch::Tensor> stateTensors(model::GraphModule& module) {
    std::vector<torch::Tensor> out = module->parameters();
    for (auto& b : module->buffers())
        out.push_back(b);
    return out;
}

namespace {

/// The local replicas' tensors, indexed [replica][tensor].
std::vector<std::vector<torch::Tensor>> replicaTensors(std::vector<Replica>& replicas) {
    std::vector<std::vector<torch::Tensor>> out;
    for (auto& r : replicas)
        out.push_back(stateTensors(r.module));
    return out;
}

/// Integer buffers (BatchNorm's batch count): the largest over all segments, everywhere.
void maxIntegerBuffers(std::vector<torch::Tensor>& target, std::vector<std::vector<torch::Tensor>>& sources,
                       Collectives* group) {
    std::vector<torch::Tensor> tops;
    for (size_t j = 0; j < target.size(); ++j) {
        if (at::isFloatingType(target[j].scalar_type()))
            continue;
        auto top = sources[0][j].to(target[j].device(), /*non_blocking=*/false, /*copy=*/true);
        for (size_t i = 1; i < sources.size(); ++i)
            top = torch::maximum(top, sources[i][j].to(target[j].device()));
        target[j].copy_(top);
        tops.push_back(target[j]);
    }
    allreduceTensors(group, tops, /*max=*/true);
}

double squaredDistance(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(b.device()) - b).pow(2).sum().item<double>();
}

} // namespace

void averageReplicas(model::GraphModule& merged, std::vector<Replica>& replicas, const std::vector<double>& weights,
                     std::vector<double>& divergence, Collectives* group, bool buffersOnly) {
    torch::NoGradGuard noGrad;
    auto target = stateTensors(merged);
    auto sources = replicaTensors(replicas);
    const size_t parameters = merged->parameters().size();
    std::vector<torch::Tensor> sums;
    for (size_t j = 0; j < target.size(); ++j) {
        if (!at::isFloatingType(target[j].scalar_type()))
            continue;
        if (buffersOnly && j < parameters) {
            target[j].copy_(sources[0][j]);
            continue;
        }
        auto sum = torch::zeros_like(target[j]);
        for (size_t i = 0; i < replicas.size(); ++i)
            if (weights[i] > 0)
                sum.add_(sources[i][j].to(sum.device()), weights[i]);
        target[j].copy_(sum);
        sums.push_back(target[j]);
    }
    allreduceTensors(group, sums);
    maxIntegerBuffers(target, sources, group);
    divergence.assign(replicas.size(), 0.0);
    for (size_t i = 0; i < replicas.size(); ++i) {
        double squares = 0;
        for (size_t j = 0; j < parameters; ++j)
            squares += squaredDistance(sources[i][j], target[j]);
        divergence[i] = std::sqrt(squares);
        for (size_t j = 0; j < target.size(); ++j)
            sources[i][j].copy_(target[j]);
    }
}

void elasticAverage(model::GraphModule& center, std::vector<Replica>& replicas, double alpha,
                    std::vector<double>& divergence, Collectives* group) {
    torch::NoGradGuard noGrad;
    auto target = stateTensors(center);
    auto sources = replicaTensors(replicas);
    const size_t parameters = center->parameters().size();
    divergence.assign(replicas.size(), 0.0);
    std::vector<torch::Tensor> sums;
    std::vector<size_t> which;
    for (size_t j = 0; j < target.size(); ++j) {
        if (!at::isFloatingType(target[j].scalar_type()))
            continue;
        auto sum = torch::zeros_like(target[j]);
        for (size_t i = 0; i < replicas.size(); ++i) {
            const auto diff = sources[i][j].to(sum.device()) - target[j];
            if (j < parameters)
                divergence[i] += diff.pow(2).sum().item<double>();
            sum.add_(diff);
            sources[i][j].sub_(diff.to(sources[i][j].device()), alpha);
        }
        sums.push_back(sum);
        which.push_back(j);
    }
    allreduceTensors(group, sums);
    for (size_t k = 0; k < sums.size(); ++k)
        target[which[k]].add_(sums[k], alpha);
    for (auto& d : divergence)
        d = std::sqrt(d);
    maxIntegerBuffers(target, sources, group);
    for (size_t i = 0; i < replicas.size(); ++i)
        for (size_t j = 0; j < target.size(); ++j)
            if (!at::isFloatingType(target[j].scalar_type()))
                sources[i][j].copy_(target[j]);
}

void averageGradients(std::vector<Replica>& replicas, const std::vector<double>& weights, Collectives* group) {
    torch::NoGradGuard noGrad;
    auto first = replicas.front().module->parameters();
    std::vector<std::vector<torch::Tensor>> params;
    for (auto& r : replicas)
        params.push_back(r.module->parameters());
    std::vector<torch::Tensor> sums;
    for (size_t j = 0; j < first.size(); ++j) {
        auto sum = torch::zeros_like(first[j]);
        for (size_t i = 0; i < replicas.size(); ++i) {
            const auto& grad = params[i][j].grad();
            if (weights[i] > 0 && grad.defined())
                sum.add_(grad.to(sum.device()), weights[i]);
        }
        sums.push_back(sum);
    }
    allreduceTensors(group, sums);
    for (size_t i = 0; i < replicas.size(); ++i)
        for (size_t j = 0; j < first.size(); ++j) {
            auto& grad = params[i][j].mutable_grad();
            if (grad.defined())
                grad.copy_(sums[j]);
            else
                grad = sums[j].to(params[i][j].device(), /*non_blocking=*/false, /*copy=*/true);
        }
}

} // namespace mppdl::train
