// The partition rule of loader.h in one place: which positions of an epoch's permutation a
// rank and worker get, batch by batch.
#pragma once

#include <cstdint>

namespace strata::loader {

struct Partition {
  uint64_t n = 0;          // records in the epoch
  uint64_t start = 0;      // positions already consumed by the job
  uint64_t world = 1, rank = 0;
  uint64_t workers = 1, worker = 0;
  uint64_t batch = 1;
  bool drop_last = false, pad = false;

  // Samples of this rank from `start` to the end of the epoch.
  uint64_t RankSamples() const {
    const uint64_t m = n - start;
    if (drop_last) return (m / world) / batch * batch;
    if (pad) return n == 0 ? 0 : (m + world - 1) / world;
    return m > rank ? (m - rank + world - 1) / world : 0;
  }
  uint64_t RankBatches() const { return (RankSamples() + batch - 1) / batch; }
  // Batches this worker produces: the rank's batches worker, worker + workers, ...
  uint64_t WorkerBatches() const {
    const uint64_t b = RankBatches();
    return b > worker ? (b - worker + workers - 1) / workers : 0;
  }
  // The rank's batch number of this worker's k-th batch.
  uint64_t RankBatch(uint64_t k) const { return worker + k * workers; }
  // Samples in the rank's batch b.
  uint64_t BatchSamples(uint64_t b) const {
    const uint64_t total = RankSamples();
    const uint64_t first = b * batch;
    return first >= total ? 0 : (total - first < batch ? total - first : batch);
  }
  // The permutation position of the rank's j-th sample (pad wraps to the start of the epoch).
  uint64_t PositionOf(uint64_t j) const {
    const uint64_t p = start + rank + j * world;
    return p < n ? p : p % n;
  }
  // Positions the whole job has consumed once every rank has consumed its batch b.
  uint64_t ConsumedAfter(uint64_t b) const {
    const uint64_t c = start + (b + 1) * batch * world;
    return c < n ? c : n;
  }
};

}  // namespace strata::loader
