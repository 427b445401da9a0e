#include "data/chat_format.h"

#include "kernels/error.h"

namespace qtrain {

std::string ChatMLRenderer::render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const {
  std::string out;
  for (const auto& t : turns) out += "<|im_start|>" + t.role + "\n" + t.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::vector<TextSegment> chat_segments(const ChatRenderer& r, const std::vector<ChatTurn>& turns) {
  std::vector<TextSegment> segs;
  std::string done;  // text already emitted
  for (size_t i = 0; i < turns.size(); ++i) {
    if (turns[i].role != "assistant") continue;
    std::vector<ChatTurn> before(turns.begin(), turns.begin() + i);
    std::string prompt = r.render(before, true);
    std::vector<ChatTurn> upto(turns.begin(), turns.begin() + i + 1);
    std::string full = r.render(upto, false);
    if (prompt.compare(0, done.size(), done) != 0 || full.compare(0, prompt.size(), prompt) != 0)
      throw Error("chat template: rendering is not prefix-stable, cannot mask the prompt (turn " +
                  std::to_string(i) + ")");
    segs.push_back({prompt.substr(done.size()), false, true});
    segs.push_back({full.substr(prompt.size()), true, true});
    done = std::move(full);
  }
  std::string all = r.render(turns, false);
  if (all.size() > done.size()) segs.push_back({all.substr(done.size()), false, true});
  return segs;
}

}  // namespace qtrain
