-- Argo CD health of Tributary resources (tributary.dev: KafkaCluster, Topic, Schema, Connector, Stream), from
-- their kstatus conditions. Argo CD runs it with gopher-lua (Lua 5.1) and `obj` set to the resource.
--
--   Progressing  the operator has not yet reported on the current spec (observedGeneration behind
--                metadata.generation, or no status yet), or Reconciling=True
--   Degraded     Stalled=True: the operator cannot make progress without a change (invalid spec,
--                unreachable dependency, ...); the message is the condition's
--   Suspended    spec.state Paused or Stopped (Connector, Stream), once the operator observed it
--   Healthy      Ready=True for the current generation
--
-- A stale generation is checked first, so a status written for an older spec never counts, and a change is
-- Progressing at once instead of flapping through the old verdict.

local hs = {}

local function condition(conditions, type_)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local conditions = status.conditions
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")
local stalled = condition(conditions, "Stalled")

-- status.observedGeneration, else the Ready condition's.
local observed = status.observedGeneration
if observed == nil and ready ~= nil then
  observed = ready.observedGeneration
end
local generation = obj.metadata.generation
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local state = nil
if obj.spec ~= nil then
  state = obj.spec.state
end
if state == "Paused" or state == "Stopped" then
  hs.status = "Suspended"
  hs.message = "spec.state is " .. state
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
