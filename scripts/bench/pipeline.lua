-- pipeline.lua - wrk script for W1p: 8 requests for the URL's path in one write.
-- Built once in init; request() hands wrk the same 8-request string every time,
-- and wrk counts the 8 responses that come back for it.
local depth = 8

init = function(args)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, wrk.path)
  end
  req = table.concat(r)
end

request = function()
  return req
end
