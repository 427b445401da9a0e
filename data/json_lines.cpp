#include "data/json_lines.h"

#include "data/gz_lines.h"
#include "kernels/error.h"

namespace qtrain {

void for_each_json_line(const std::string& path,
                        const std::function<void(const nlohmann::json& record, const std::string& where)>& f) {
  LineReader in(path);
  std::string_view line;
  while (in.next(line)) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(in.line_no());
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error(where + ": not valid JSON");
    f(j, where);
  }
}

}  // namespace qtrain
