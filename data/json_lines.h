// The records of a JSONL file (plain or gzip'd, through LineReader), one
// parsed object per non-blank line, each with "FILE:LINE" for error messages.
// The small user-written files (generate's --prompts, eval's multiple-choice
// questions) read through here, so a bad line is reported the same way.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace qtrain {

// Calls f(record, "path:line") for each non-blank line; a line that is not JSON
// is an Error naming the file and line.
void for_each_json_line(const std::string& path,
                        const std::function<void(const nlohmann::json& record, const std::string& where)>& f);

}  // namespace qtrain
