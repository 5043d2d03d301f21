package sqltext

import "testing"

func TestInertTrigger(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW INSERT INTO b VALUES (NEW.id)",
			"CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW IF @lockstep_applying IS NULL THEN INSERT INTO b VALUES (NEW.id); END IF"},
		{"CREATE DEFINER=`root`@`127.0.0.1` TRIGGER `pt_osc_shop_users_upd` AFTER UPDATE ON `shop`.`users` FOR EACH ROW BEGIN DELETE IGNORE FROM `shop`.`_users_new` WHERE `id` <=> OLD.`id`;REPLACE INTO `shop`.`_users_new` (`id`) VALUES (NEW.`id`);END",
			"CREATE DEFINER=`root`@`127.0.0.1` TRIGGER `pt_osc_shop_users_upd` AFTER UPDATE ON `shop`.`users` FOR EACH ROW IF @lockstep_applying IS NULL THEN BEGIN DELETE IGNORE FROM `shop`.`_users_new` WHERE `id` <=> OLD.`id`;REPLACE INTO `shop`.`_users_new` (`id`) VALUES (NEW.`id`);END; END IF"},
		{"create or replace trigger t before update on a for each row follows `other one` set new.x = 'for each row';",
			"create or replace trigger t before update on a for each row follows `other one` IF @lockstep_applying IS NULL THEN set new.x = 'for each row'; END IF;"},
		{"/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`%`*/ /*!50003 TRIGGER t BEFORE INSERT ON a FOR EACH ROW SET NEW.c = 1 */",
			"/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`%`*/ /*!50003 TRIGGER t BEFORE INSERT ON a FOR EACH ROW IF @lockstep_applying IS NULL THEN SET NEW.c = 1; END IF */"},
		{"CREATE TRIGGER /* FOR EACH ROW */ t AFTER DELETE ON a FOR EACH ROW lbl: BEGIN END lbl",
			"CREATE TRIGGER /* FOR EACH ROW */ t AFTER DELETE ON a FOR EACH ROW IF @lockstep_applying IS NULL THEN lbl: BEGIN END lbl; END IF"},
	} {
		got, ok := InertTrigger(c.in)
		if !ok || got != c.want {
			t.Errorf("InertTrigger(%q)\n got %q, %v\nwant %q", c.in, got, ok, c.want)
		}
		again, _ := InertTrigger(got)
		if again != got {
			t.Errorf("a guarded trigger was guarded twice: %q", again)
		}
		if body := "SET NEW.c = 1"; TriggerBody("IF @lockstep_applying IS NULL THEN "+body+"; END IF") != body || TriggerBody(body) != body {
			t.Errorf("TriggerBody does not take the guard off")
		}
	}
	for _, q := range []string{
		"CREATE TABLE trigger_log (id INT)",
		"CREATE VIEW v AS SELECT 'CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW x'",
		"DROP TRIGGER IF EXISTS t",
		"CREATE PROCEDURE p() BEGIN CREATE TRIGGER x AFTER INSERT ON a FOR EACH ROW SET @a = 1; END",
	} {
		if got, ok := InertTrigger(q); ok || got != q {
			t.Errorf("InertTrigger(%q) = %q, %v: changed a statement that creates no trigger", q, got, ok)
		}
	}
}
