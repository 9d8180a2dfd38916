// Russian and English; the default follows the browser, the choice is remembered.
import { signal } from "@preact/signals";
import type { ProgressMessageCode, TaskKind, TaskState, VkBudgetWarningCode, VkTokenState } from "./generated/graphql";

const en = {
  query: "Query", queryErrorAt: "Line {line}, column {column}", expected: "expected",
  rules: "Saved rules", addRule: "Save a rule", ruleName: "Name", ruleQuery: "Query", ruleReference: "Use as",
  ruleHelp: "A saved query, usable in any query as rule:\"name\". Terms match every word form; AND, OR, NOT, -word, \"phrase\", \"phrase\"~3, a NEAR/3 b, prefix*, kw:word.",
  appName: "VK Comments Parser",
  signIn: "Sign in", signOut: "Sign out", token: "API token",
  tokenHelp: "Paste an API token. `vkcp serve` prints a one-time admin token on the first start; more with `vkcp token create --name NAME --role operator`.",
  wrongToken: "The service does not accept this token: it is wrong, revoked or expired.",
  sessionEnded: "Your session ended: the token is no longer accepted. Sign in again.",
  networkError: "The service cannot be reached.",
  dashboard: "Dashboard", communities: "Communities", keywords: "Keywords", review: "Review", live: "Live",
  tasks: "Tasks", exports: "Exports", admin: "Admin", graphiql: "GraphiQL",
  language: "Language",
  totals: "Totals", groupsN: "Communities", posts: "Posts", comments: "Comments", replies: "Replies",
  matchedComments: "Matched comments", matches: "Matches", authors: "Authors",
  perDay: "Comments and matches per day", topKeywords: "Top keywords", topAuthors: "Top authors",
  topRules: "Top saved rules", noSavedRules: "No saved rule yet.",
  perCommunity: "Communities", lastCollected: "Last collection", lastError: "Last error",
  runningTasks: "Running tasks", noRunning: "No task is running.",
  name: "Name", word: "Word", category: "Category", active: "Active", actions: "Actions",
  addRefs: "Add communities (one reference per line: link, screen name or id)", add: "Add",
  added: "added", refresh: "Refresh", remove: "Remove", parse: "Parse", edit: "Edit", save: "Save", cancel: "Cancel",
  maxPosts: "Max posts", since: "Since", until: "Until", monitoring: "Monitoring", interval: "Interval, min",
  priority: "Priority", members: "Members", confirmRemove: "Remove it and everything collected from it?",
  caseSensitive: "Case", wholeWord: "Whole word", morphology: "Morphology", matchesCount: "Matches",
  addKeyword: "Add keyword", bulkImport: "Bulk import (one keyword per line)", importFile: "or a text file",
  import: "Import", reanalyze: "Re-analyze", all: "All", any: "Any", yes: "yes", no: "no",
  text: "Text", author: "Author (VK id)", matchedOnly: "Matched only", viewed: "Viewed", archived: "Archived",
  sort: "Sort", newest: "Newest", oldest: "Oldest", mostLiked: "Most liked", mostMatches: "Most matches",
  markViewed: "Mark viewed", markArchived: "Archive", unmark: "Mark unviewed", selected: "selected",
  openOnVk: "Open on VK", inReplyTo: "In reply to", loaded: "loaded", of: "of", none: "Nothing here yet.",
  shortcuts: "Keys: j / k next / previous, v viewed, a archived, x select",
  liveHelp: "New matched comments appear here as they arrive.", waiting: "Waiting for new matches…",
  kind: "Kind", state: "State", progress: "Progress", created: "Created", error: "Error", result: "Result",
  cancelTask: "Cancel", format: "Format", startExport: "Export", exportFilter: "Exports the current Review filter:",
  download: "Download", rows: "rows", vkTokens: "VK token pool", fingerprint: "Fingerprint", parkedUntil: "Parked until",
  reason: "Reason", requests: "Requests",
  adminOnly: "Admins only.", community: "Community", keyword: "Keyword", clear: "Clear filters", apply: "Apply",
  ok: "OK", failed: "failed", reanalyzeHelp: "Re-match stored comments against the keywords.",
  apiTokens: "API tokens", role: "Role", createToken: "Create token", lastUsed: "Last used", revoked: "revoked",
  revoke: "Revoke", confirmRevoke: "revoke this token? Requests with it are refused at once.",
  secretOnce: "The new token, shown only now — copy it:", noVkTokens: "No VK tokens are configured (VKCP_VK_TOKENS).",
  authorName: "Author",
  clearChoice: "Clear the choice", find: "Find",
  liveFilter: "Live filter", liveAll: "Watching every new match.", liveFiltered: "Watching only the matches that pass the filter.",
  connConnecting: "Connecting…", connConnected: "Live", connReconnecting: "Connection lost, reconnecting…", connEnded: "Feed ended",
  feedCompleted: "The service ended the feed.", resubscribeIn: "Subscribing again in", secondsShort: "s",
  resubscribeNow: "Subscribe now", received: "Received", openInReview: "Review these", clearList: "Clear the list",
  timeZone: "Time zone of the times", serverDefault: "Server default", browserZone: "this browser", otherZone: "Other IANA zone…",
  zoneName: "IANA time zone name", delimiter: "CSV delimiter", comma: "Comma (,)", semicolon: "Semicolon (;)", tab: "Tab",
  // Task results, with plural forms "one|other" (en) and "one|few|many|other" (ru); # is the number
  nPosts: "# post|# posts", nComments: "# comment|# comments", nMatches: "# match|# matches",
  nMatchedComments: "# matched comment|# matched comments", nKeywords: "# keyword|# keywords",
  nSkippedPosts: "# post skipped|# posts skipped", nAuthorsLookedUp: "# author looked up|# authors looked up",
  // {name}: a slot TaskResult fills in
  parseResult: "{posts}, comments read on {postsRead}: {comments}, {matches}",
  analyzeResult: "Checked {comments} against {keywords}: {matchedComments}, {matches}",
  timesIn: "times in {zone}", post: "post",
  // Task kinds and states (TaskKind, TaskState), VK token states (VkTokenState)
  kindPARSE: "Parse", kindANALYZE: "Analyze", kindEXPORT: "Export", kindINDEX_RULES: "Index rules",
  stateQUEUED: "Queued", stateRUNNING: "Running", stateSUCCEEDED: "Succeeded", stateFAILED: "Failed", stateCANCELLED: "Cancelled",
  tokenACTIVE: "active", tokenPARKED: "parked", tokenREVOKED: "revoked",
  nRows: "# row|# rows",
  // comment history
  deletedBadge: "deleted", editedBadge: "edited", deletedFilter: "Deleted on VK", editedFilter: "Edited",
  deletedAt: "Deleted on VK (noticed {when})", editedAt: "Edited (noticed {when})", earlierTexts: "Earlier texts",
  seenAt: "seen {when}",
  // the team's review workflow
  status: "Status", assignee: "Assignee", tags: "Tags", note: "Note", nobody: "nobody",
  statusNEW: "New", statusIN_PROGRESS: "In progress", statusDONE: "Done", statusIGNORED: "Ignored",
  setStatus: "Set status…", assignTo: "Assign to…", unassign: "Unassign", addTag: "Add tag", removeTag: "Remove tag",
  tagHelp: "a label; Enter adds it", saveNote: "Save note", myQueue: "My queue", myQueueHelp: "assigned to me, not done",
  history: "History", noHistory: "No changes yet.", tagsFilter: "Tags (comma-separated)",
  eventChange: "{who} · {field}: {from} → {to}", empty: "—",
  workflowShortcuts: "1 new, 2 in progress, 3 done, 4 ignored, m assign to me, t add tag, n note",
  byStatus: "Comments by status",
  // the VK token pool's calls and the schedule's budget
  callsToday: "Calls today", callsRemaining: "Left today", quotas: "By method",
  budget: "VK calls a day (monitoring schedule)", method: "Method", projectedCalls: "Projected a day", dailyLimit: "Pool's daily limit",
  fits: "fits", doesNotFit: "does not fit", runsPerDay: "Runs a day", callsPerRun: "Calls a run", estimated: "estimated",
  budgetSummary: "{calls} projected a day with {tokens}", nCalls: "# call|# calls", nTokens: "# usable token|# usable tokens",
  // the budget's warning (VkBudgetWarningCode, see BUDGET_WARNING)
  budgetShort: "The schedule needs ~{calls} {method} calls a day; {tokens} allow {limit}",
  budgetAdd: "add {tokens} or lengthen the monitoring intervals.", nMoreTokens: "# token|# tokens",
  budgetNoTokens: "No usable VK token: the schedule needs {needs}. Add tokens (VKCP_VK_TOKENS).",
  noLimit: "no known limit", noMonitoring: "No community is monitored.",
  waitingUntil: "resumes by itself {when}", nLeft: "{n} left", stateWAITING: "Waiting for VK",
  vkCallsResult: "VK calls: {calls}",
  // Alerts: rules, channels, deliveries (AlertMode, AlertDeliveryState, SystemEvent)
  alerts: "Alerts", alertRules: "Alert rules", newRule: "New rule", createRule: "Create rule", mode: "Mode",
  modeINSTANT: "Instant", modeDIGEST: "Digest", modeTHRESHOLD: "Threshold",
  modeHelpINSTANT: "One message per matched comment, as soon as it is stored.",
  modeHelpDIGEST: "At most one message per period: how many matched, the first few, a link to Review.",
  modeHelpTHRESHOLD: "One message per window when at least that many comments matched within it.",
  everyMinutes: "every {n} min", thresholdText: "{count} in {minutes} min",
  digestMinutes: "Every, min", thresholdCount: "At least, matches", thresholdMinutes: "Within, min",
  messageLanguage: "Message language", ruleEnabled: "Enabled", ruleOn: "on", ruleOff: "off", enable: "Enable", disable: "Disable",
  mutedUntil: "muted until {when}", mutedUntilLabel: "Muted until", muteHour: "Mute 1 h", unmute: "Unmute", channels: "Channels", channel: "Channel", channelN: "Channel {n}", addChannel: "Add channel",
  channelHelp: "One URL each: https://… is a webhook signed per Standard Webhooks; any other scheme is an Apprise URL (mailtos://, tgram://, slack://, ntfy://, json://…). Saved channels are shown with their secrets masked: leave one as it is to keep it.",
  channelWebhook: "signed webhook", channelApprise: "Apprise: {scheme}",
  channelEmpty: "Enter a URL or remove this channel.", channelNotUrl: "Not a URL: it needs a scheme, like https:// or mailtos://, and no spaces.",
  channelBadWebhook: "This webhook URL has no host.", fixChannels: "Some channels are not accepted: see each channel.",
  systemEvents: "Operational events (a system rule)", systemEventsHelp: "Chosen events make this a system rule: it alerts them instead of comments.",
  eventTASK_FAILED: "A task failed", eventTOKENS_DOWN: "Every VK token parked or revoked", eventCOMMUNITY_LATE: "A community's collection is late",
  eventTASK_STALLED: "A task stalled", eventCHANNEL_FAILING: "A channel failing for an hour",
  whichComments: "Which matched comments", everyMatch: "every matched comment",
  sendTest: "Send test", sending: "Sending…", testAccepted: "accepted", testRefused: "refused",
  webhookSecretOnce: "“{rule}”: the secret its webhooks are signed with, shown only now — give it to the receiver:",
  hide: "Hide", noRules: "No alert rule yet.", confirmRemoveRule: "remove this rule? Its pending deliveries are not sent.",
  alertsAdminOnly: "Only admins create and change alert rules; operators see the channels, viewers do not.",
  deliveries: "Deliveries", rule: "Rule", whatWasSent: "Comment or event", attempts: "Attempts", sentAt: "Sent",
  nextAttempt: "next try {when}", noDeliveries: "Nothing sent yet.", loadMore: "Load more",
  deliveryPENDING: "Pending", deliverySENT: "Sent", deliveryFAILED: "Failed", deliverySKIPPED: "Skipped",
};
export type Key = keyof typeof en;

const ru: Record<Key, string> = {
  query: "Запрос", queryErrorAt: "Строка {line}, столбец {column}", expected: "ожидалось",
  rules: "Сохранённые правила", addRule: "Сохранить правило", ruleName: "Название", ruleQuery: "Запрос", ruleReference: "Ссылка",
  ruleHelp: "Сохранённый запрос; в любом запросе — rule:\"название\". Слова находят все словоформы; AND, OR, NOT, -слово, \"фраза\", \"фраза\"~3, a NEAR/3 b, префикс*, kw:слово.",
  appName: "Парсер комментариев VK",
  signIn: "Войти", signOut: "Выйти", token: "API-токен",
  tokenHelp: "Вставьте API-токен. `vkcp serve` при первом запуске печатает одноразовый токен администратора; новые — `vkcp token create --name ИМЯ --role operator`.",
  wrongToken: "Сервис не принимает этот токен: он неверный, отозван или истёк.",
  sessionEnded: "Сеанс завершён: токен больше не принимается. Войдите снова.",
  networkError: "Сервис недоступен.",
  dashboard: "Сводка", communities: "Сообщества", keywords: "Ключевые слова", review: "Просмотр", live: "Эфир",
  tasks: "Задачи", exports: "Выгрузки", admin: "Администрирование", graphiql: "GraphiQL",
  language: "Язык",
  totals: "Итого", groupsN: "Сообщества", posts: "Посты", comments: "Комментарии", replies: "Ответы",
  matchedComments: "Комментарии с совпадениями", matches: "Совпадения", authors: "Авторы",
  perDay: "Комментарии и совпадения по дням", topKeywords: "Частые ключевые слова", topAuthors: "Активные авторы",
  topRules: "Частые сохранённые правила", noSavedRules: "Сохранённых правил пока нет.",
  perCommunity: "Сообщества", lastCollected: "Последний сбор", lastError: "Последняя ошибка",
  runningTasks: "Выполняемые задачи", noRunning: "Сейчас ничего не выполняется.",
  name: "Название", word: "Слово", category: "Категория", active: "Активно", actions: "Действия",
  addRefs: "Добавить сообщества (по одной ссылке в строке: ссылка, короткое имя или id)", add: "Добавить",
  added: "добавлено", refresh: "Обновить", remove: "Удалить", parse: "Собрать", edit: "Изменить", save: "Сохранить", cancel: "Отмена",
  maxPosts: "Макс. постов", since: "С", until: "По", monitoring: "Мониторинг", interval: "Интервал, мин",
  priority: "Приоритет", members: "Участники", confirmRemove: "Удалить сообщество и всё собранное из него?",
  caseSensitive: "Регистр", wholeWord: "Слово целиком", morphology: "Морфология", matchesCount: "Совпадений",
  addKeyword: "Добавить слово", bulkImport: "Импорт списком (по слову в строке)", importFile: "или текстовый файл",
  import: "Импортировать", reanalyze: "Переанализировать", all: "Все", any: "Любые", yes: "да", no: "нет",
  text: "Текст", author: "Автор (VK id)", matchedOnly: "Только с совпадениями", viewed: "Просмотрено", archived: "В архиве",
  sort: "Сортировка", newest: "Сначала новые", oldest: "Сначала старые", mostLiked: "По лайкам", mostMatches: "По совпадениям",
  markViewed: "Просмотрено", markArchived: "В архив", unmark: "Не просмотрено", selected: "выбрано",
  openOnVk: "Открыть в VK", inReplyTo: "В ответ на", loaded: "загружено", of: "из", none: "Пока пусто.",
  shortcuts: "Клавиши: j / k — следующий / предыдущий, v — просмотрено, a — в архив, x — выбрать",
  liveHelp: "Новые комментарии с совпадениями появляются здесь сразу.", waiting: "Ждём новых совпадений…",
  kind: "Тип", state: "Состояние", progress: "Прогресс", created: "Создана", error: "Ошибка", result: "Результат",
  cancelTask: "Отменить", format: "Формат", startExport: "Выгрузить", exportFilter: "Выгружается текущий фильтр просмотра:",
  download: "Скачать", rows: "строк", vkTokens: "Пул токенов VK", fingerprint: "Отпечаток", parkedUntil: "Отложен до",
  reason: "Причина", requests: "Запросов",
  adminOnly: "Только для администраторов.", community: "Сообщество", keyword: "Ключевое слово", clear: "Сбросить", apply: "Применить",
  ok: "OK", failed: "ошибка", reanalyzeHelp: "Заново сопоставить сохранённые комментарии с ключевыми словами.",
  apiTokens: "API-токены", role: "Роль", createToken: "Создать токен", lastUsed: "Последнее использование", revoked: "отозван",
  revoke: "Отозвать", confirmRevoke: "отозвать этот токен? Запросы с ним сразу перестанут приниматься.",
  secretOnce: "Новый токен, показывается только сейчас — скопируйте его:", noVkTokens: "Токены VK не заданы (VKCP_VK_TOKENS).",
  authorName: "Автор",
  clearChoice: "Сбросить выбор", find: "Найти",
  liveFilter: "Фильтр эфира", liveAll: "Показываются все новые совпадения.", liveFiltered: "Показываются только совпадения, проходящие фильтр.",
  connConnecting: "Подключение…", connConnected: "В эфире", connReconnecting: "Связь потеряна, переподключаемся…", connEnded: "Эфир прерван",
  feedCompleted: "Сервис завершил трансляцию.", resubscribeIn: "Повторная подписка через", secondsShort: "с",
  resubscribeNow: "Подписаться сейчас", received: "Получено", openInReview: "Открыть в просмотре", clearList: "Очистить список",
  timeZone: "Часовой пояс времени", serverDefault: "Как на сервере", browserZone: "этот браузер", otherZone: "Другой пояс IANA…",
  zoneName: "Название пояса IANA", delimiter: "Разделитель CSV", comma: "Запятая (,)", semicolon: "Точка с запятой (;)", tab: "Табуляция",
  nPosts: "# пост|# поста|# постов|# поста", nComments: "# комментарий|# комментария|# комментариев|# комментария",
  nMatches: "# совпадение|# совпадения|# совпадений|# совпадения",
  nMatchedComments: "# комментарий с совпадениями|# комментария с совпадениями|# комментариев с совпадениями|# комментария с совпадениями",
  nKeywords: "# ключевое слово|# ключевых слова|# ключевых слов|# ключевого слова",
  nSkippedPosts: "# пост пропущен|# поста пропущено|# постов пропущено|# поста пропущено",
  nAuthorsLookedUp: "# автор запрошен|# автора запрошено|# авторов запрошено|# автора запрошено",
  parseResult: "{posts}, комментарии прочитаны у {postsRead}: {comments}, {matches}",
  analyzeResult: "Проверено: {comments}, ключевых слов: {keywordCount} — {matchedComments}, {matches}",
  timesIn: "время: {zone}", post: "пост",
  kindPARSE: "Сбор", kindANALYZE: "Анализ", kindEXPORT: "Выгрузка", kindINDEX_RULES: "Индекс правил",
  stateQUEUED: "В очереди", stateRUNNING: "Выполняется", stateSUCCEEDED: "Готово", stateFAILED: "Ошибка", stateCANCELLED: "Отменено",
  tokenACTIVE: "работает", tokenPARKED: "отдыхает", tokenREVOKED: "отозван",
  nRows: "# строка|# строки|# строк|# строки",
  deletedBadge: "удалён", editedBadge: "изменён", deletedFilter: "Удалённые в VK", editedFilter: "Изменённые",
  deletedAt: "Удалён в VK (замечено {when})", editedAt: "Изменён (замечено {when})", earlierTexts: "Прежние тексты",
  seenAt: "виден с {when}",
  // работа команды с комментариями
  status: "Статус", assignee: "Исполнитель", tags: "Метки", note: "Заметка", nobody: "никто",
  statusNEW: "Новый", statusIN_PROGRESS: "В работе", statusDONE: "Готово", statusIGNORED: "Не требует действий",
  setStatus: "Статус…", assignTo: "Назначить…", unassign: "Снять назначение", addTag: "Добавить метку", removeTag: "Убрать метку",
  tagHelp: "метка; Enter — добавить", saveNote: "Сохранить заметку", myQueue: "Мои задачи", myQueueHelp: "назначены мне, не готовы",
  history: "История", noHistory: "Изменений пока нет.", tagsFilter: "Метки (через запятую)",
  eventChange: "{who} · {field}: {from} → {to}", empty: "—",
  workflowShortcuts: "1 — новый, 2 — в работе, 3 — готово, 4 — не требует действий, m — назначить себе, t — метка, n — заметка",
  byStatus: "Комментарии по статусам",
  callsToday: "Вызовов сегодня", callsRemaining: "Осталось сегодня", quotas: "По методам",
  budget: "Вызовы VK в день (расписание мониторинга)", method: "Метод", projectedCalls: "Прогноз в день", dailyLimit: "Дневной лимит пула",
  fits: "укладывается", doesNotFit: "не укладывается", runsPerDay: "Запусков в день", callsPerRun: "Вызовов за запуск", estimated: "оценка",
  budgetSummary: "прогноз: {calls} в день, {tokens}", nCalls: "# вызов|# вызова|# вызовов|# вызова",
  nTokens: "# рабочий токен|# рабочих токена|# рабочих токенов|# рабочего токена",
  budgetShort: "Расписанию нужно ~{calls} вызовов {method} в день, а {tokens} позволяют {limit}",
  budgetAdd: "добавьте {tokens} или увеличьте интервалы мониторинга.", nMoreTokens: "# токен|# токена|# токенов|# токена",
  budgetNoTokens: "Нет рабочих токенов VK, а расписанию нужно {needs}. Добавьте токены (VKCP_VK_TOKENS).",
  noLimit: "лимит неизвестен", noMonitoring: "Ни одно сообщество не на мониторинге.",
  waitingUntil: "продолжится само {when}", nLeft: "осталось {n}", stateWAITING: "Ждёт VK",
  vkCallsResult: "вызовов VK: {calls}",
  alerts: "Оповещения", alertRules: "Правила оповещений", newRule: "Новое правило", createRule: "Создать правило", mode: "Режим",
  modeINSTANT: "Сразу", modeDIGEST: "Сводка", modeTHRESHOLD: "Порог",
  modeHelpINSTANT: "Сообщение на каждый комментарий с совпадением, как только он сохранён.",
  modeHelpDIGEST: "Не больше одного сообщения за период: сколько совпало, первые из них, ссылка на «Просмотр».",
  modeHelpTHRESHOLD: "Одно сообщение за окно, если в нём совпало не меньше заданного числа комментариев.",
  everyMinutes: "раз в {n} мин", thresholdText: "{count} за {minutes} мин",
  digestMinutes: "Раз в, мин", thresholdCount: "Не меньше совпадений", thresholdMinutes: "За, мин",
  messageLanguage: "Язык сообщений", ruleEnabled: "Включено", ruleOn: "вкл.", ruleOff: "выкл.", enable: "Включить", disable: "Выключить",
  mutedUntil: "без звука до {when}", mutedUntilLabel: "Без звука до", muteHour: "Тишина на 1 ч", unmute: "Включить звук", channels: "Каналы", channel: "Канал", channelN: "Канал {n}", addChannel: "Добавить канал",
  channelHelp: "По одному URL: https://… — вебхук с подписью Standard Webhooks; любая другая схема — URL Apprise (mailtos://, tgram://, slack://, ntfy://, json://…). Сохранённые каналы показаны со скрытыми секретами: оставьте такой как есть, чтобы сохранить его.",
  channelWebhook: "вебхук с подписью", channelApprise: "Apprise: {scheme}",
  channelEmpty: "Введите URL или удалите этот канал.", channelNotUrl: "Это не URL: нужна схема, например https:// или mailtos://, и без пробелов.",
  channelBadWebhook: "В URL вебхука нет адреса сервера.", fixChannels: "Некоторые каналы не приняты: см. у каждого канала.",
  systemEvents: "События работы (системное правило)", systemEventsHelp: "Если выбрать события, правило станет системным: оно оповещает о них, а не о комментариях.",
  eventTASK_FAILED: "Задача завершилась ошибкой", eventTOKENS_DOWN: "Все токены VK на паузе или отозваны", eventCOMMUNITY_LATE: "Сбор сообщества запаздывает",
  eventTASK_STALLED: "Задача зависла", eventCHANNEL_FAILING: "Канал не принимает сообщения час",
  whichComments: "Какие комментарии с совпадениями", everyMatch: "все комментарии с совпадениями",
  sendTest: "Проверить отправку", sending: "Отправка…", testAccepted: "принято", testRefused: "отказ",
  webhookSecretOnce: "«{rule}»: секрет подписи его вебхуков, показывается только сейчас — передайте его получателю:",
  hide: "Скрыть", noRules: "Правил оповещений пока нет.", confirmRemoveRule: "удалить это правило? Его неотправленные сообщения не уйдут.",
  alertsAdminOnly: "Создавать и менять правила могут только администраторы; каналы видят операторы, но не наблюдатели.",
  deliveries: "Доставки", rule: "Правило", whatWasSent: "Комментарий или событие", attempts: "Попытки", sentAt: "Отправлено",
  nextAttempt: "следующая попытка {when}", noDeliveries: "Пока ничего не отправлено.", loadMore: "Загрузить ещё",
  deliveryPENDING: "Ожидает", deliverySENT: "Отправлено", deliveryFAILED: "Не доставлено", deliverySKIPPED: "Пропущено",
};

export type Lang = "en" | "ru";
const stored = localStorage.getItem("vkcp.lang");
export const lang = signal<Lang>(
  stored === "en" || stored === "ru" ? stored : navigator.language.toLowerCase().startsWith("ru") ? "ru" : "en",
);
document.documentElement.lang = lang.value;

export function setLang(value: Lang): void {
  lang.value = value;
  localStorage.setItem("vkcp.lang", value);
  document.documentElement.lang = value;
}

export function t(key: Key): string {
  return (lang.value === "ru" ? ru : en)[key];
}

export function fmtDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(lang.value === "ru" ? "ru-RU" : "en-GB", { dateStyle: "short", timeStyle: "short" });
}

export function fmtNum(n: number | null | undefined): string {
  return n == null ? "—" : n.toLocaleString(lang.value === "ru" ? "ru-RU" : "en-GB");
}

const PLURAL_ORDER: Record<Lang, Intl.LDMLPluralRule[]> = { en: ["one", "other"], ru: ["one", "few", "many", "other"] };

/** A counted phrase: `count("nPosts", 5)` is "5 posts" / "5 постов". The key's text holds the
 * language's plural forms separated by "|", in PLURAL_ORDER; "#" stands for the number. */
export function count(key: Key, n: number): string {
  const forms = t(key).split("|");
  const index = PLURAL_ORDER[lang.value].indexOf(new Intl.PluralRules(lang.value === "ru" ? "ru-RU" : "en-GB").select(n));
  return (forms[index] ?? forms[forms.length - 1]).replace("#", fmtNum(n));
}

/** A key's text with its {slots} filled in. */
export function fill(key: Key, slots: Record<string, string>): string {
  return t(key).replace(/\{(\w+)\}/g, (whole, name: string) => slots[name] ?? whole);
}


export const kindName = (kind: TaskKind): string => t(`kind${kind}` as const);
export const stateName = (state: TaskState): string => t(`state${state}` as const);
export const tokenStateName = (state: VkTokenState): string => t(`token${state}` as const);

type Args = Record<string, unknown>;
const n = (args: Args, name: string): number => (typeof args[name] === "number" ? (args[name] as number) : Number(args[name]) || 0);
const s = (args: Args, name: string): string => String(args[name] ?? "");

/** "1.2 MB" (domain.export.human_size) in the language's units and decimal sign. */
function size(text: string): string {
  const found = /^([\d.]+) (bytes?|KB|MB|GB|TB)$/.exec(text);
  if (!found || lang.value !== "ru") return text;
  const unit = { byte: "байт", bytes: "байт", KB: "КБ", MB: "МБ", GB: "ГБ", TB: "ТБ" }[found[2]];
  return `${Number(found[1]).toLocaleString("ru-RU")} ${unit}`;
}

/** How each progress message (ProgressMessageCode, domain/progress.py) reads, from its arguments.
 * A code without its wording here fails the build. */
const PROGRESS: Record<Lang, Record<ProgressMessageCode, (a: Args) => string>> = {
  en: {
    READING_WALL: () => "reading the wall",
    POSTS_TO_READ: (a) => `${count("nPosts", n(a, "posts"))}, ${fmtNum(n(a, "toRead"))} to read`,
    POSTS_READ: (a) => `${fmtNum(n(a, "done"))}/${count("nPosts", n(a, "total"))}, ${count("nComments", n(a, "comments"))}`,
    COMMENTS_CHECKED: (a) => `${fmtNum(n(a, "done"))}/${count("nComments", n(a, "total"))}` + ("matched" in a ? `, ${fmtNum(n(a, "matched"))} matched` : ""),
    ROWS_WRITTEN: (a) => `${fmtNum(n(a, "done"))}/${count("nRows", n(a, "total"))}`,
    FINISHING_FILE: () => "finishing the file",
    FILE_WRITTEN: (a) => `${count("nComments", n(a, "rows"))} written to ${s(a, "file")} (${size(s(a, "size"))})`,
    RETRYING: (a) => `retrying: ${s(a, "error")}`,
    WAITING_FOR_VK: (a) => `waiting for VK: every token ${s(a, "reason") === "CAPTCHA" ? "needs a captcha solved" : "is over its daily quota"} until ${s(a, "until")} UTC`,
  },
  ru: {
    READING_WALL: () => "чтение стены",
    POSTS_TO_READ: (a) => `${count("nPosts", n(a, "posts"))}, прочитать: ${fmtNum(n(a, "toRead"))}`,
    POSTS_READ: (a) => `${fmtNum(n(a, "done"))}/${count("nPosts", n(a, "total"))}, ${count("nComments", n(a, "comments"))}`,
    COMMENTS_CHECKED: (a) => `${fmtNum(n(a, "done"))}/${count("nComments", n(a, "total"))}` + ("matched" in a ? `, с совпадениями: ${fmtNum(n(a, "matched"))}` : ""),
    ROWS_WRITTEN: (a) => `${fmtNum(n(a, "done"))}/${count("nRows", n(a, "total"))}`,
    FINISHING_FILE: () => "завершение файла",
    FILE_WRITTEN: (a) => `записано комментариев: ${fmtNum(n(a, "rows"))}, файл ${s(a, "file")} (${size(s(a, "size"))})`,
    RETRYING: (a) => `повтор после ошибки: ${s(a, "error")}`,
    WAITING_FOR_VK: (a) => `ожидание VK: ${s(a, "reason") === "CAPTCHA" ? "все токены ждут решения капчи" : "у всех токенов исчерпан дневной лимит"} до ${s(a, "until")} UTC`,
  },
};

/** A task's progress message in the console's language; the service's English text when it has no code. */
export function progressText(p: { message: string; messageCode: ProgressMessageCode | null; messageArgs: unknown }): string {
  if (!p.messageCode) return p.message;
  const say = PROGRESS[lang.value][p.messageCode];
  return say ? say((p.messageArgs ?? {}) as Args) : p.message;
}

type ShortMethod = { method: string; calls: number; limit: number };
const shortMethods = (a: Args): ShortMethod[] =>
  (Array.isArray(a.short) ? (a.short as Args[]) : []).map((m) => ({ method: s(m, "method"), calls: n(m, "calls"), limit: n(m, "limit") }));

/** How the schedule's budget warning (VkBudgetWarningCode, domain/budget.py, which alone decides
 * which methods do not fit and how many tokens to add) reads, from its arguments. A code without
 * its wording here fails the build. */
const BUDGET_WARNING: Record<VkBudgetWarningCode, (a: Args) => string> = {
  NO_USABLE_TOKEN: (a) => fill("budgetNoTokens", { needs: shortMethods(a).map((m) => `~${count("nCalls", m.calls)} ${m.method}`).join(", ") }),
  TOKENS_SHORT: (a) => {
    const tokens = count("nTokens", n(a, "usableTokens"));
    const parts = shortMethods(a).map((m) => fill("budgetShort", { calls: fmtNum(m.calls), method: m.method, tokens, limit: fmtNum(m.limit) }));
    return `${parts.join("; ")}: ${fill("budgetAdd", { tokens: count("nMoreTokens", n(a, "addTokens")) })}`;
  },
};

/** The budget's warning in the console's language; the service's English text when it has no code; null when the schedule fits. */
export function budgetWarningText(b: { warning: string | null; warningCode: VkBudgetWarningCode | null; warningArgs: unknown }): string | null {
  if (!b.warningCode) return b.warning;
  const say = BUDGET_WARNING[b.warningCode];
  return say ? say((b.warningArgs ?? {}) as Args) : b.warning;
}
