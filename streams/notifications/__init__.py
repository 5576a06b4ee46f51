"""SaaS Notifications: workflows started by triggers, sent to Slack, Teams and e-mail."""
