"""The REST facade: Salesforce Connect paths over the actions and the store."""
