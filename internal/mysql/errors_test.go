package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/service/classifytest"
)

func TestClassify(t *testing.T) {
	classifytest.Run(t, Classify, []classifytest.Case{
		{Err: &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '3' for key 'PRIMARY'"}, Permanent: true, Hint: "diverged"},
		{Err: &mysql.MySQLError{Number: 1451, Message: "Cannot delete or update a parent row"}, Permanent: true, Hint: "diverged"},
		{Err: &mysql.MySQLError{Number: 1452, Message: "Cannot add or update a child row"}, Permanent: true, Hint: "diverged"},
		{Err: &mysql.MySQLError{Number: 1146}, Permanent: true},
		{Err: &mysql.MySQLError{Number: 1054}, Permanent: true},
		{Err: &mysql.MySQLError{Number: 1045}, Permanent: true, Hint: "password"},
		{Err: &mysql.MySQLError{Number: 1142}, Permanent: true, Hint: "grant"},
		{Err: &mysql.MySQLError{Number: 1290}, Permanent: true, Hint: "READ_ONLY ADMIN"},
		{Err: fmt.Errorf("apply row: %w", &mysql.MySQLError{Number: 1062}), Permanent: true, Hint: "diverged"},
		{Err: &mysql.MySQLError{Number: 1213}},
		{Err: &mysql.MySQLError{Number: 1205}},
		{Err: &mysql.MySQLError{Number: 2006}},
		{Err: &mysql.MySQLError{Number: 1040}},
		{Err: &mysql.MySQLError{Number: 1927}},
		{Err: &gomysql.MyError{Code: 1236}, Permanent: true},
		{Err: &gomysql.MyError{Code: 1053}},
		{Err: io.ErrUnexpectedEOF},
		{Err: context.DeadlineExceeded},
		{Err: service.Permanent(errors.New("x")), Permanent: true},
	})
}
