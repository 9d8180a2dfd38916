// Every operation the console sends. graphql-codegen checks them against ../schema.graphql and
// generates their types into src/generated/graphql.ts.

export const PING = /* GraphQL */ `
  query Ping { groups(first: 1) { totalCount } }
`;

const TASK_FIELDS = /* GraphQL */ `
  fragment TaskFields on Task {
    id kind state priority createdAt startedAt finishedAt updatedAt error result params cancelRequested waitingUntil
    progress { done total message messageCode messageArgs }
    group { id name }
  }
`;

export const STATS = /* GraphQL */ `
  query Stats($since: Date, $until: Date) {
    stats(since: $since, until: $until, top: 10) {
      since until
      totals { groups posts comments replies matchedComments matches authors keywords }
      groups { groupId name comments matchedComments lastCollectedAt group { id monitoring { lastError lastRunAt } } }
      topKeywords { keywordId word matches comments }
      topAuthors { vkId name comments }
      topRules { ruleId name comments }
      days { day comments matchedComments matches }
      byStatus { status comments }
    }
  }
`;

export const TASKS = /* GraphQL */ `
  query Tasks($filter: TaskFilter, $first: Int!, $after: String) {
    tasks(filter: $filter, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...TaskFields } }
    }
  }
  ${TASK_FIELDS}
`;

export const TASK_EVENTS = /* GraphQL */ `
  subscription TaskEvents { taskEvents { ...TaskFields } }
  ${TASK_FIELDS}
`;

export const TASK_PROGRESS = /* GraphQL */ `
  subscription TaskProgress($id: ID!) { taskProgress(id: $id) { ...TaskFields } }
  ${TASK_FIELDS}
`;

export const CANCEL_TASK = /* GraphQL */ `
  mutation CancelTask($id: ID!) { cancelTask(id: $id) { task { ...TaskFields } errors { code message } } }
  ${TASK_FIELDS}
`;

const GROUP_FIELDS = /* GraphQL */ `
  fragment GroupFields on Group {
    id vkId screenName name isClosed membersCount active maxPosts since url deactivated commentsCount
    monitoring { enabled intervalMinutes priority lastRunAt lastSuccessAt lastError nextRunAt }
  }
`;

export const GROUPS = /* GraphQL */ `
  query Groups($first: Int!, $after: String) {
    groups(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...GroupFields } }
    }
  }
  ${GROUP_FIELDS}
`;

// The counts of the communities being parsed, read again as their parses store comments.
export const GROUP_COUNTS = /* GraphQL */ `
  query GroupCounts($ids: [ID!]!) { nodes(ids: $ids) { ... on Group { id commentsCount } } }
`;

export const ADD_GROUPS = /* GraphQL */ `
  mutation AddGroups($refs: [String!]!) {
    addGroups(refs: $refs) {
      results { ref group { id name } errors { code message } }
      errors { code message }
    }
  }
`;

export const UPDATE_GROUP = /* GraphQL */ `
  mutation UpdateGroup($id: ID!, $input: UpdateGroupInput!) {
    updateGroup(id: $id, input: $input) { group { ...GroupFields } errors { code message field } }
  }
  ${GROUP_FIELDS}
`;

export const REFRESH_GROUP = /* GraphQL */ `
  mutation RefreshGroup($id: ID!) { refreshGroup(id: $id) { group { ...GroupFields } errors { code message } } }
  ${GROUP_FIELDS}
`;

export const REMOVE_GROUP = /* GraphQL */ `
  mutation RemoveGroup($id: ID!) { removeGroup(id: $id) { removedGroupId errors { code message } } }
`;

export const START_PARSE = /* GraphQL */ `
  mutation StartParse($input: StartParseInput!) {
    startParse(input: $input) { tasks { ...TaskFields } errors { code message } }
  }
  ${TASK_FIELDS}
`;

const KEYWORD_FIELDS = /* GraphQL */ `
  fragment KeywordFields on Keyword { id word category active caseSensitive wholeWord morphology matchesCount }
`;

export const KEYWORDS = /* GraphQL */ `
  query Keywords($first: Int!, $after: String) {
    keywords(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...KeywordFields } }
    }
  }
  ${KEYWORD_FIELDS}
`;

export const ADD_KEYWORDS = /* GraphQL */ `
  mutation AddKeywords($input: [KeywordInput!]!) {
    addKeywords(input: $input) {
      results { word keyword { id } errors { code message } }
      errors { code message }
    }
  }
`;

export const UPDATE_KEYWORD = /* GraphQL */ `
  mutation UpdateKeyword($id: ID!, $input: UpdateKeywordInput!) {
    updateKeyword(id: $id, input: $input) { keyword { ...KeywordFields } errors { code message field } }
  }
  ${KEYWORD_FIELDS}
`;

export const REMOVE_KEYWORD = /* GraphQL */ `
  mutation RemoveKeyword($id: ID!) { removeKeyword(id: $id) { removedKeywordId errors { code message } } }
`;

export const START_ANALYZE = /* GraphQL */ `
  mutation StartAnalyze($input: StartAnalyzeInput) {
    startAnalyze(input: $input) { task { ...TaskFields } errors { code message } }
  }
  ${TASK_FIELDS}
`;

const COMMENT_FIELDS = /* GraphQL */ `
  fragment CommentFields on Comment {
    id vkId ownerId text publishedAt likes deleted deletedAt editedAt viewed archived matchesCount url
    status assignee tags note
    author { vkId name url }
    group { id name }
    post { vkId }
    parent { id text author { name } }
    matches { start end matchedText keyword { id word } }
  }
`;

export const COMMENTS = /* GraphQL */ `
  query Comments($filter: CommentFilter, $orderBy: CommentOrder, $first: Int!, $after: String, $query: String = "", $withQuery: Boolean = false) {
    comments(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...CommentFields highlights(query: $query) @include(if: $withQuery) { start end term } } }
    }
  }
  ${COMMENT_FIELDS}
`;

// The rule language: checked as it is typed (the Review filter, the rule editor).
export const VALIDATE_QUERY = /* GraphQL */ `
  query ValidateQuery($query: String!) { validateQuery(query: $query) { valid errors { message line column expected } } }
`;

const RULE_FIELDS = /* GraphQL */ `
  fragment RuleFields on Rule { id name query category reference matchesCount }
`;

export const RULES = /* GraphQL */ `
  query Rules { rules(first: 100) { edges { node { ...RuleFields } } } }
  ${RULE_FIELDS}
`;

export const CREATE_RULE = /* GraphQL */ `
  mutation CreateRule($input: RuleInput!) { createRule(input: $input) { rule { ...RuleFields } errors { code message field } } }
  ${RULE_FIELDS}
`;

export const UPDATE_RULE = /* GraphQL */ `
  mutation UpdateRule($id: ID!, $input: UpdateRuleInput!) { updateRule(id: $id, input: $input) { rule { ...RuleFields } errors { code message field } } }
  ${RULE_FIELDS}
`;

export const REMOVE_RULE = /* GraphQL */ `
  mutation RemoveRule($id: ID!) { removeRule(id: $id) { removedRuleId errors { code message } } }
`;

// The texts a comment had before, for the detail pane: read for an edited comment when it is shown.
export const COMMENT_VERSIONS = /* GraphQL */ `
  query CommentVersions($id: ID!) { comment(id: $id) { id versions { text seenAt } } }
`;

export const SET_COMMENT_STATE = /* GraphQL */ `
  mutation SetCommentState(
    $ids: [ID!]!, $viewed: Boolean, $archived: Boolean, $status: CommentStatus, $assignee: String,
    $addTags: [String!], $removeTags: [String!], $note: String
  ) {
    setCommentState(
      ids: $ids, viewed: $viewed, archived: $archived, status: $status, assignee: $assignee,
      addTags: $addTags, removeTags: $removeTags, note: $note
    ) {
      comments { id viewed archived status assignee tags note }
      errors { code message }
    }
  }
`;

// Who changed what, when: the detail pane's history of the comment shown.
export const COMMENT_EVENTS = /* GraphQL */ `
  query CommentEvents($id: ID!) {
    commentEvents(id: $id, last: 50) { totalCount edges { node { at actor field oldValue newValue } } }
  }
`;

export const COMMENT_MATCHED = /* GraphQL */ `
  subscription CommentMatched($filter: CommentFilter) { commentMatched(filter: $filter) { ...CommentFields } }
  ${COMMENT_FIELDS}
`;

export const START_EXPORT = /* GraphQL */ `
  mutation StartExport($input: StartExportInput!) {
    startExport(input: $input) { task { ...TaskFields } errors { code message } }
  }
  ${TASK_FIELDS}
`;

export const VK_TOKENS = /* GraphQL */ `
  query VkTokens {
    vkTokens { fingerprint state parkedUntil reason requests callsToday callsRemaining quotas { method calls limit remaining } }
  }
`;

export const VK_BUDGET = /* GraphQL */ `
  query VkBudget {
    vkBudget {
      usableTokens projectedCalls fits warning warningCode warningArgs
      methods { method limitPerToken limit projectedCalls fits }
      communities { runsPerDay callsPerRun projectedCalls estimated group { id name } }
    }
  }
`;

export const FILTER_OPTIONS = /* GraphQL */ `
  query FilterOptions {
    groups(first: 100) { edges { node { id name } } }
    keywords(first: 100) { edges { node { id word } } }
    viewer { name role }
    assignableUsers
  }
`;

const API_TOKEN_FIELDS = /* GraphQL */ `
  fragment ApiTokenFields on ApiToken { id name role createdAt lastUsedAt revokedAt }
`;

export const API_TOKENS = /* GraphQL */ `
  query ApiTokens { apiTokens { ...ApiTokenFields } }
  ${API_TOKEN_FIELDS}
`;

export const CREATE_API_TOKEN = /* GraphQL */ `
  mutation CreateApiToken($name: String!, $role: ApiRole!) {
    createApiToken(name: $name, role: $role) { secret apiToken { ...ApiTokenFields } errors { code message field } }
  }
  ${API_TOKEN_FIELDS}
`;

export const REVOKE_API_TOKEN = /* GraphQL */ `
  mutation RevokeApiToken($id: ID!) { revokeApiToken(id: $id) { apiToken { ...ApiTokenFields } errors { code message } } }
  ${API_TOKEN_FIELDS}
`;

// Alerts: rules (admin-managed; channels come back masked, and empty for viewers) and deliveries.
const ALERT_RULE_FIELDS = /* GraphQL */ `
  fragment AlertRuleFields on AlertRule {
    id name enabled mutedUntil mode digestMinutes thresholdCount thresholdMinutes language systemEvents channels createdAt updatedAt
    filter { groupIds keywordIds statuses assignees tags text query authorIds since until viewed archived deleted edited }
  }
`;

export const ALERT_RULES = /* GraphQL */ `
  query AlertRules { alertRules { ...AlertRuleFields } }
  ${ALERT_RULE_FIELDS}
`;

// Whether this token may change rules (admins only): the admin-only token list answers or refuses.
export const ADMIN_PROBE = /* GraphQL */ `
  query AdminProbe { apiTokens { id } }
`;

export const CREATE_ALERT_RULE = /* GraphQL */ `
  mutation CreateAlertRule($input: AlertRuleInput!) {
    createAlertRule(input: $input) { alertRule { ...AlertRuleFields } webhookSecret errors { code message field } }
  }
  ${ALERT_RULE_FIELDS}
`;

export const UPDATE_ALERT_RULE = /* GraphQL */ `
  mutation UpdateAlertRule($id: ID!, $input: AlertRuleInput!) {
    updateAlertRule(id: $id, input: $input) { alertRule { ...AlertRuleFields } errors { code message field } }
  }
  ${ALERT_RULE_FIELDS}
`;

export const REMOVE_ALERT_RULE = /* GraphQL */ `
  mutation RemoveAlertRule($id: ID!) { removeAlertRule(id: $id) { removedAlertRuleId errors { code message } } }
`;

export const TEST_ALERT_RULE = /* GraphQL */ `
  mutation TestAlertRule($id: ID!) { testAlertRule(id: $id) { results { channel ok detail } errors { code message } } }
`;

export const ALERT_DELIVERIES = /* GraphQL */ `
  query AlertDeliveries($filter: AlertDeliveryFilter, $first: Int!, $after: String) {
    alertDeliveries(filter: $filter, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges {
        node {
          id channel state attempts lastError createdAt sentAt nextAttemptAt messageId event
          rule { id name }
          comment { id text url author { name } group { name } }
        }
      }
    }
  }
`;
