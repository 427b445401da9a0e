// Multiple-choice questions in the MMLU format and the k-shot prompts built
// from them, exactly as Hendrycks et al.'s evaluate.py (and lm-evaluation-
// harness's MMLU task) write them:
//
//   The following are multiple choice questions (with answers) about {subject}.\n\n
//   {question}\nA. {choice}\nB. {choice}\nC. {choice}\nD. {choice}\nAnswer: {letter}\n\n   <- once per shot
//   {question}\nA. {choice}\n...\nAnswer:                                                  <- the question scored
//
// {subject} is the subject field with '_' as spaces. The shots are the first
// k dev examples of the same subject, in file order.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace qtrain {

struct McQuestion {
  std::string subject, question;
  std::vector<std::string> choices;  // 2..26, lettered A, B, ...
  int answer = 0;                    // index into choices
  std::string where;                 // "FILE:LINE", for messages
};

struct McSet {
  std::vector<McQuestion> questions;                     // the ones scored, in file order
  std::map<std::string, std::vector<McQuestion>> dev;    // subject -> its dev examples (the shots), in file order
};

// Reads JSONL rows {"question", "choices": [...], "answer": 0-based index or
// a letter, "subject", optional "split"}. The shots are every row of
// dev_path when it is given, else the rows of path whose split is "dev".
// Rows of path whose split is "dev" are never scored; of the others, those
// with no split or split == `split` are ("test" scores MMLU's test rows of a
// file that holds all three splits). Bad rows -> Error naming FILE:LINE and the field.
McSet read_mc_questions(const std::string& path, const std::string& dev_path, const std::string& split = "test");

// "A", "B", ... for choice i.
std::string mc_letter(int i);

// The prompt text for `q` after the given shots (possibly none).
std::string mc_prompt_text(const McQuestion& q, const std::vector<const McQuestion*>& shots);

struct McPrompt {
  std::vector<int32_t> ids;
  int shots = 0;     // shots kept
  bool cut = false;  // even with no shot it was longer than max_tokens: only its last max_tokens tokens are kept
};

// The tokens of q's prompt with up to `shots` dev examples of its subject,
// dropping shots from the last one while the prompt exceeds max_tokens.
McPrompt build_mc_prompt(const Tokenizer& tok, const McSet& set, const McQuestion& q, int shots, int max_tokens);

}  // namespace qtrain
