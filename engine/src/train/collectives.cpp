#include "collectives.h"

#include <cstring>

namespace mppdl::train {

void allreduceTensors(Collectives* group, const std::vector<torch::Tensor>& tensors, bool max) {
    if (!group || group->world() == 1 || tensors.empty())
        return;
    // One buffer per dtype and device: one collective instead of one per layer.
    std::vector<bool> done(tensors.size(), false);
    for (size_t a = 0; a < tensors.size(); ++a) {
        if (done[a])
            continue;
        std::vector<size_t> same;
        for (size_t b = a; b < tensors.size(); ++b)
            if (!done[b] && tensors[b].scalar_type() == tensors[a].scalar_type() &&
                tensors[b].device() == tensors[a].device()) {
                same.push_back(b);
                done[b] = true;
            }
        std::vector<torch::Tensor> flat;
        for (size_t k : same)
            flat.push_back(tensors[k].reshape({-1}));
        auto buffer = torch::cat(flat);
        group->allreduce(buffer, max);
        int64_t offset = 0;
        for (size_t k : same) {
            const int64_t count = tensors[k].numel();
            tensors[k].view({-1}).copy_(buffer.slice(0, offset, offset + count));
            offset += count;
        }
    }
}

std::string broadcastBytes(Collectives* group, const std::string& bytes) {
    if (!group || group->world() == 1)
        return bytes;
    auto size = torch::tensor({int64_t(bytes.size())}, torch::kLong);
    group->broadcast(size, 0);
    auto buffer = torch::zeros({size.item<int64_t>()}, torch::kUInt8);
    if (group->rank() == 0)
        std::memcpy(buffer.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    group->broadcast(buffer, 0);
    return std::string(reinterpret_cast<const char*>(buffer.data_ptr<uint8_t>()), size_t(buffer.numel()));
}

} // namespace mppdl::train
