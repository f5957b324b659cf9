-- textutil: a bundled Lua module, the Lua counterpart of hello.
-- Its functions take and return JSON-friendly values, so they can be
-- called from C (mh_module_call) or the shell:
--   modhost call textutil stats '["the quick brown fox"]'
local M = {}

-- s in upper case.
function M.upper(s)
  return string.upper(s)
end

-- s in lower case.
function M.lower(s)
  return string.lower(s)
end

-- The words of s (runs of non-space characters), as an array.
function M.words(s)
  local out = {}
  for w in string.gmatch(s, "%S+") do
    out[#out + 1] = w
  end
  return out
end

-- {chars = byte count, words = word count} of s.
function M.stats(s)
  return { chars = #s, words = #M.words(s) }
end

-- s reversed (bytes).
function M.reverse(s)
  return string.reverse(s)
end

-- Raises a Lua error: shows how errors come back (message and traceback).
function M.fail(msg)
  error(msg or "textutil.fail was called")
end

return M
