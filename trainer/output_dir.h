// The --out directory of a training run: one run at a time, and no silent
// replacement of an earlier run's results.
#pragma once
#include <string>

namespace qtrain {

// OUT/.qtrain.lock holds "<pid> <host>" of the run using OUT. Taking it fails
// (BadInput naming the pid) while that process lives; a lock left by a dead
// process on this host is taken over. The destructor removes it (and OUT,
// when this lock created it and nothing else was written there).
class OutputLock {
 public:
  explicit OutputLock(const std::string& out_dir);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool created_dir_ = false;
};

// A fresh run (no --resume) into an OUT that already holds a checkpoint, an
// adapter or a model is refused unless `overwrite`.
void check_output_dir(const std::string& out_dir, bool resuming, bool overwrite);
// --overwrite: removes those, so nothing of the earlier run can be mistaken for
// this one's. Called once the run has passed its input checks (model built,
// data opened), so a refused run leaves the earlier one whole.
void remove_earlier_results(const std::string& out_dir);

}  // namespace qtrain
